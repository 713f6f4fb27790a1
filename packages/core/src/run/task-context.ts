import type { Artifact } from "../definition/artifact.ts";

/** Logs params, metrics and tags to the task's run. */
export interface RunLog {
  /** Records a param (stringified). */
  param(key: string, value: string | number | boolean): void;
  /** Records a metric value, at `step` (default: 0). */
  metric(key: string, value: number, step?: number): void;
  /** Sets a tag. */
  tag(key: string, value: string): void;
}

/** Writes files that become the task run's artifacts. */
export interface ArtifactWriter {
  /** Writes `data` to `name` in the task's artifacts folder and returns the Artifact to output. */
  write(name: string, data: string | Uint8Array): Promise<Artifact>;
  /** Absolute path for `name` in the artifacts folder, parent folders created, for tools that write files themselves. */
  path(name: string): Promise<string>;
  /** The Artifact for a file or folder already written at `path(name)`. */
  file(name: string): Artifact;
}

/** Messages from the task; the CLI prints them prefixed by the task, embedders get them as `log` events. */
export interface TaskLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What a running task gets besides its inputs. */
export interface TaskContext<Params = Record<string, unknown>> {
  /** The flow's validated params. */
  readonly params: Params;
  /** Node id of this task in the flow. */
  readonly nodeId: string;
  /** Task name. */
  readonly taskName: string;
  /** This task's run id. */
  readonly runId: string;
  /** The flow run's id. */
  readonly flowRunId: string;
  /** 1-based attempt number. */
  readonly attempt: number;
  /** Aborted when the flow is cancelled, the attempt times out, or fail-fast stops the flow. */
  readonly signal: AbortSignal;
  readonly log: RunLog;
  readonly artifacts: ArtifactWriter;
  readonly logger: TaskLogger;
  /** Where this run is recorded, for child processes that log to it themselves (MLFLOW_RUN_ID and friends). */
  readonly tracking: { readonly kind: string; readonly uri: string; readonly experimentId: string };
  /** A secret from the environment or the secrets file. Never logged; outputs, params, tags and metric keys carrying it are refused. */
  secret(name: string): string;
  /**
   * `text` with the value of every secret known to this run (raw or JSON-escaped) replaced by `***`:
   * for text the task writes itself (a report, a log file). Logger lines, errors and events are masked without it.
   */
  mask(text: string): string;
}
