/**
 * `shell(name, "python process.py --file-path {file_path} --n {n}")`: a task that runs a
 * command template with `/bin/sh -c`. `{name}` placeholders are replaced by inputs, each
 * value shell-quoted, so a value is always one literal argument and never shell code.
 */
import { NO_RETRY, OptionError } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { runProcess } from "./spawn/spawn.ts";
import { parseTemplate, renderShell } from "./spawn/template.ts";
import { checkName, configDigest, cwdFingerprint, kindTask, type KindCall, type KindTask } from "@cairn/dsl/kind";
import { checkProcessOptions, processEnv, pythonPath, type ProcessOptions } from "./spawn/options.ts";
import { checkCallPlaceholders } from "./script.ts";

/** Options of `shell()`. */
export interface ShellOptions extends ProcessOptions {
  /** The shell. @default "/bin/sh" */
  shell?: string | undefined;
}

/** Default outputs of a shell task that does not write CAIRN_OUTPUTS. */
export type ShellOutputs = {
  /** What the command printed on stdout (without the last newline). */
  stdout: string;
  exitCode: number;
};

/**
 * Declares a task that runs a shell command template.
 * @example
 * const count = shell("count", "wc -l < {file}").input<{ file: Artifact }>();
 */
export function shell(name: string, command: string, options: ShellOptions = {}): KindTask<Record<string, unknown>, ShellOutputs> {
  checkName(name);
  if (typeof command !== "string" || !command.trim()) throw new OptionError(`shell "${name}" command`, "a non-empty command template", command);
  checkProcessOptions(name, options, { kind: "shell", keys: ["shell"] });
  const sh = options.shell ?? "/bin/sh";
  const template = parseTemplate(command, name, { shell: true });
  // Each option's part of the fingerprint, by name, so that explain can name the one that changed.
  const keyed: Record<string, string> = {
    ...(options.shell ? { shell: `shell=${sh}` } : {}),
    // The folder it runs in is part of what it computes (`wc -l < data.txt`): inside the project by its path from the project's root, so checkouts at other places share keys.
    ...(options.cwd ? { cwd: cwdFingerprint(options.cwd) } : {}),
    ...(options.env && Object.keys(options.env).length ? { env: `env=${configDigest(Object.entries(options.env).sort())}` } : {}),
  };
  const extras = Object.values(keyed);
  return kindTask({
    definition: {
      name,
      kind: "shell",
      code: [command, ...extras].join("\n#cairn:"),
      codeOptions: { content: command, options: keyed },
      writesOutputs: "as JSON written to $CAIRN_OUTPUTS; without that file its outputs are stdout and exitCode",
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: async (inputs, ctx) => {
        const line = renderShell(template, inputs, name); // before anything starts: unknown placeholders throw here
        const { env } = processEnv(options, ctx, { PYTHONPATH: pythonPath() });
        const r = await runProcess(
          {
            command: sh,
            args: ["-c", line],
            display: line,
            inputs,
            env,
            captureStdout: "unless-outputs",
            keepFilesOnFailure: true,
            shell: true,
            ...(options.cwd ? { cwd: options.cwd } : {}),
            ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
          },
          ctx,
        );
        return r.outputs ?? { stdout: r.stdout ?? "", exitCode: r.exitCode };
      },
    },
    ...(template.placeholders.length
      ? { checkCall: (inputs: Record<string, unknown>, schema: StandardSchemaV1 | undefined, call: KindCall) => checkCallPlaceholders(name, template.placeholders, inputs, schema, call) }
      : {}),
  });
}
