/**
 * For TypeScript scripts run by `script()`: read the inputs, write the outputs, put
 * files in the task's artifacts. Dependency-free (node:fs, node:path), so importing it
 * does not load the engine.
 * @example
 * import { currentTask } from "cairn-dag/current-task";
 * const task = currentTask<{ data: Artifact; lr: number }, { model: Artifact; accuracy: number }>();
 * writeFileSync(task.artifactPath("model.json"), ...);
 * task.setOutputs({ model: task.artifact("model.json"), accuracy: 0.9 });
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** What a script writes in its outputs for a file in the artifacts folder; Cairn turns it into an Artifact. */
export interface ArtifactMarker {
  readonly $artifact: string;
}

/** An output type as the script writes it: Artifacts may be given as markers. */
export type Writable<T> = T extends { kind: "cairn.artifact" } ? T | ArtifactMarker : T extends readonly (infer E)[] ? Writable<E>[] : T extends object ? { [K in keyof T]: Writable<T[K]> } : T;

/** The running task, seen from inside its process. */
export interface CurrentTask<In, Out> {
  /** The task's inputs (artifacts as Artifact objects with an absolute `path`). */
  readonly inputs: In;
  /** The task's run id. */
  readonly runId: string;
  /** Writes outputs; several calls merge. */
  setOutputs(outputs: Partial<Writable<Out>>): void;
  /** Absolute path for `name` in the task's artifacts folder, parent folders created. */
  artifactPath(name: string): string;
  /** The marker to output for a file written at `artifactPath(name)`. */
  artifact(name: string): ArtifactMarker;
}

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: this script is meant to run as a Cairn task (script()/shell()), which sets it.`);
  return v;
}

/**
 * Cairn's one rule for a task's artifact names (`taskArtifactPath` in @cairn/core, which checks
 * every `$artifact` marker again): a relative path with "/" (or `\`) between parts; no NUL,
 * absolute path, drive, UNC prefix, or "..", "." or empty part; not in `cairn/`, Cairn's own; nothing an MLflow
 * server would refuse or rename (`unstorableOnMlflow`). Returned with "/" between parts. Kept
 * here, not imported, so that a script does not load the engine; a test holds the two equal.
 * @internal Exported for that test.
 */
export function safeArtifactName(name: string): string {
  let reason: string | undefined;
  if (typeof name !== "string") reason = "is not a string";
  else if (name === "") reason = "is empty";
  else if (name.includes("\0")) reason = "contains a NUL character";
  else if (/^[\\/]{2}/.test(name)) reason = "is a UNC path";
  else if (/^[\\/]/.test(name)) reason = "is an absolute path";
  else if (/^[A-Za-z]:/.test(name)) reason = "starts with a drive";
  else {
    const parts = name.split(/[\\/]/);
    const bad = parts.find((p) => p === ".." || p === "." || p === "");
    if (bad !== undefined) reason = bad === ".." ? 'climbs out with ".."' : 'has a "." or empty part';
    else if (parts[0]!.toLowerCase() === "cairn") reason = 'is in "cairn/", the folder of Cairn\'s own record of the run, where it would be overwritten';
    else if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) reason = "holds a control character, which an MLflow server drops, rewrites or refuses";
    else if (name.includes("#")) reason = 'holds "#", which an MLflow server refuses';
    else if (/%[0-9A-Fa-f]{2}/.test(name)) reason = 'holds "%" and two hex digits, which an MLflow server decodes (storing the file under another name)';
    else if (/[?;]$|;\?/.test(name)) reason = 'ends with "?" or ";" (or has ";" before "?"), which an MLflow server drops';
  }
  if (reason) {
    throw new Error(
      `Artifact name ${JSON.stringify(name)} ${reason}; it must be a relative path inside the artifacts folder, ` +
        `with "/" between folders and no "..", "." or empty parts, like "data.csv" or "reports/summary.md".`,
    );
  }
  return name.split(/[\\/]/).join("/");
}

/** The task this process runs as. */
export function currentTask<In = Record<string, unknown>, Out = Record<string, unknown>>(): CurrentTask<In, Out> {
  const inputs = JSON.parse(readFileSync(env("CAIRN_INPUTS"), "utf8")) as In;
  return {
    inputs,
    runId: process.env.CAIRN_RUN_ID ?? "",
    setOutputs(outputs) {
      const file = env("CAIRN_OUTPUTS");
      const previous = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as object) : {};
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ ...previous, ...outputs }));
      renameSync(tmp, file);
    },
    artifactPath(name) {
      const p = join(env("CAIRN_ARTIFACTS"), ...safeArtifactName(name).split("/"));
      mkdirSync(dirname(p), { recursive: true });
      return p;
    },
    artifact: (name) => ({ $artifact: safeArtifactName(name) }),
  };
}
