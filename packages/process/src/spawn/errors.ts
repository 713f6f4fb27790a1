/**
 * Errors of the process kinds: a child that failed to start, failed, or wrote outputs Cairn
 * cannot use; a command template that does not parse or names an unknown input.
 */
import { CairnError } from "@cairn/core";

/** A child process exited with a non-zero code or was killed by a signal. */
export class ProcessFailedError extends CairnError {
  static override readonly code: string = "CAIRN_PROCESS_FAILED";
  override name = "ProcessFailedError";
  constructor(
    readonly nodeId: string,
    /** The command as printed (arguments shell-quoted). */
    readonly command: string,
    /** Exit code, when the process exited by itself. */
    readonly exitCode: number | undefined,
    /** Signal that ended the process (e.g. `SIGKILL`), when one did. */
    readonly signal: string | undefined,
    /** The last lines the process wrote to stderr. */
    readonly stderrTail: readonly string[],
  ) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length
      ? ` Last ${stderrTail.length} line${stderrTail.length === 1 ? "" : "s"} of stderr:\n  | ${stderrTail.join("\n  | ")}\n`
      : " It wrote nothing to stderr. ";
    super(
      `Task "${nodeId}": \`${command}\` ${how}.${tail}` +
        `The full output is in the task run's artifacts logs/stdout.txt and logs/stderr.txt; fix the error above and run again.`,
    );
  }
}

/** A child process could not be started at all (command not found, not executable). */
export class ProcessStartError extends CairnError {
  static override readonly code: string = "CAIRN_PROCESS_START";
  override name = "ProcessStartError";
  constructor(
    readonly nodeId: string,
    readonly command: string,
    /** The system error code (`ENOENT`, `EACCES`, ...); `code` is Cairn's, as on every Cairn error. */
    readonly systemCode: string | undefined,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super(`Task "${nodeId}" could not start \`${command}\`${systemCode ? ` (${systemCode})` : ""}. ${hint}`, options);
  }
}

/** A command template or argument names a `{placeholder}` that no input provides. */
export class UnknownPlaceholderError extends CairnError {
  static override readonly code: string = "CAIRN_UNKNOWN_PLACEHOLDER";
  override name = "UnknownPlaceholderError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly taskName: string,
    readonly placeholder: string,
    readonly available: readonly string[],
  ) {
    super(
      `Task "${taskName}" uses the placeholder {${placeholder}}, but no input is called "${placeholder}" ` +
        `(inputs: ${available.length ? available.map((a) => `"${a}"`).join(", ") : "none"}). ` +
        `Pass it when calling the task in build(), e.g. ${taskName}({ ${placeholder}: ... }), or fix the template. ` +
        `For a literal "{${placeholder}}" write "{{${placeholder}}}".`,
    );
  }
}

/** A command template is unsafe or malformed (a placeholder inside quotes, ...). */
export class CommandTemplateError extends CairnError {
  static override readonly code: string = "CAIRN_COMMAND_TEMPLATE";
  override name = "CommandTemplateError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly taskName: string,
    readonly template: string,
    detail: string,
  ) {
    super(`Task "${taskName}" has an invalid command template ${JSON.stringify(template)}: ${detail}`);
  }
}

/** What a process wrote to CAIRN_OUTPUTS is not usable (bad JSON, an artifact marker to a missing file). */
export class ProcessOutputError extends CairnError {
  static override readonly code: string = "CAIRN_PROCESS_OUTPUT";
  override name = "ProcessOutputError";
  constructor(
    readonly nodeId: string,
    detail: string,
  ) {
    super(`Task "${nodeId}" wrote outputs Cairn cannot use: ${detail}`);
  }
}
