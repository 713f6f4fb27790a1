/**
 * `shell(name, "python process.py --file-path {file_path} --n {n}")`: a task that runs a
 * command template with `/bin/sh -c`. `{name}` placeholders are replaced by inputs, each
 * value shell-quoted, so a value is always one literal argument and never shell code.
 */
import { NO_RETRY, OptionError } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { runProcess } from "./spawn/spawn.ts";
import { parseTemplate, renderShell } from "./spawn/template.ts";
import { checkName, configDigest, kindTask, type KindCall, type KindTask } from "@cairn/dsl/kind";
import { checkProcessOptions, processEnv, pythonPath, type ProcessOptions } from "./spawn/options.ts";
import { checkCallPlaceholders } from "./script.ts";

/** Options of `shell()`. */
export interface ShellOptions extends ProcessOptions {
  /** The shell. @default "/bin/sh" */
  shell?: string;
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
  const extras = [
    ...(options.shell ? [`shell=${sh}`] : []),
    // The folder it runs in is part of what it computes (`wc -l < data.txt`), as given: keys stay the same across machines.
    ...(options.cwd ? [`cwd=${JSON.stringify(options.cwd)}`] : []),
    ...(options.env && Object.keys(options.env).length ? [`env=${configDigest(Object.entries(options.env).sort())}`] : []),
  ];
  return kindTask({
    definition: {
      name,
      kind: "shell",
      code: [command, ...extras].join("\n#cairn:"),
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
            captureStdout: true,
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
