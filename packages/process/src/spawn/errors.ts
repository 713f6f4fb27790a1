/**
 * Errors of the process kinds: a child that failed to start, failed, or wrote outputs Cairn
 * cannot use; a command template that does not parse or names an unknown input.
 */
import { constants as osConstants } from "node:os";
import { CairnError } from "@cairn/core";

/** Characters of one stderr line in a ProcessFailedError's message (the note of what was cut included). */
export const TAIL_LINE_CHARS = 1000;
/** Characters of stderr in a ProcessFailedError's message, about: the last lines that fit. */
export const TAIL_CHARS = 4000;

const CUT_NOTE = / … \((\d+) more bytes\)$/;

/** `line` at most TAIL_LINE_CHARS long, ending with " … (N more bytes)" when cut (N adds up an earlier note's). */
function cutTailLine(line: string): string {
  if (line.length <= TAIL_LINE_CHARS) return line;
  const noted = CUT_NOTE.exec(line);
  const text = noted ? line.slice(0, noted.index) : line;
  const before = noted ? Number(noted[1]) : 0;
  // Room for the note; the count has at most 16 digits.
  let keep = TAIL_LINE_CHARS - " … ( more bytes)".length - 16;
  const c = text.charCodeAt(keep - 1);
  if (c >= 0xd800 && c <= 0xdbff) keep--;
  return `${text.slice(0, keep)} … (${before + Buffer.byteLength(text.slice(keep))} more bytes)`;
}

/** The last lines of `lines` that fit in TAIL_CHARS, each cut to TAIL_LINE_CHARS; the last line always. */
export function stderrTailForMessage(lines: readonly string[]): string[] {
  const out: string[] = [];
  let size = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = cutTailLine(lines[i]!);
    size += line.length + 5;
    if (out.length && size > TAIL_CHARS) break;
    out.push(line);
  }
  return out.reverse();
}

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
    /**
     * The last lines the process wrote to stderr (masked; a line longer than 8 KB cut, with a note
     * of how many bytes were left out). The message shows the last of them that fit in about 4 KB.
     */
    readonly stderrTail: readonly string[],
    /** The process is a shell (`sh -c`), whose exit code 128+N says a command in it was killed by signal N. */
    shell = false,
  ) {
    const shown = stderrTailForMessage(stderrTail);
    const tail = shown.length
      ? ` Last ${shown.length} line${shown.length === 1 ? "" : "s"} of stderr:\n  | ${shown.join("\n  | ")}\n`
      : " It wrote nothing to stderr. ";
    const killedIn = shell && !signal ? commandSignal(exitCode) : undefined;
    super(
      `Task "${nodeId}": \`${command}\` ${howItEnded(exitCode, signal, killedIn)}.${tail}` +
        `The full output is in the task run's artifacts logs/stdout.txt and logs/stderr.txt; ${whatToDo(signal ?? killedIn)}`,
    );
  }
}

/**
 * The signal a shell's exit code 128+N names (`SIGKILL` for 137), as sh and bash report a
 * command they ran that a signal killed; undefined for any other code.
 */
function commandSignal(exitCode: number | undefined): string | undefined {
  if (exitCode === undefined || exitCode <= 128) return undefined;
  const number = exitCode - 128;
  return Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0];
}

/** Why SIGKILL came: a process cannot send it to itself by mistake, nor catch it. */
const SIGKILL_FROM_OUTSIDE =
  "the kernel's out-of-memory killer sends SIGKILL when the machine runs out of memory (`dmesg` or `journalctl -k` then shows an \"Out of memory: Killed process\" line), and so does `kill -9`";

/** How the process ended, as the message's first sentence says it; `killedIn`: the signal that killed a command in the shell that ran it. */
function howItEnded(exitCode: number | undefined, signal: string | undefined, killedIn: string | undefined): string {
  // Most often the out-of-memory killer, which leaves no error in stderr.
  if (signal === "SIGKILL") return `was killed by SIGKILL from outside the process: ${SIGKILL_FROM_OUTSIDE}`;
  if (signal) return `was killed by ${signal}`;
  if (killedIn === "SIGKILL") return `exited with code ${exitCode}: a command in it was killed by SIGKILL from outside: ${SIGKILL_FROM_OUTSIDE}`;
  if (killedIn) return `exited with code ${exitCode}: a command in it was killed by ${killedIn}`;
  return `exited with code ${exitCode}`;
}

/** The message's last words: what the user can do. */
function whatToDo(signal: string | undefined): string {
  if (signal === "SIGKILL") return "if it ran out of memory, give it more memory (or run fewer tasks at once) or make it use less, and run again.";
  return "fix the error above and run again.";
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
  /** A missing or unusable program fails every attempt alike; the machine's limits (processes, files, memory) may pass. */
  override get retryable(): boolean {
    return this.systemCode === "EAGAIN" || this.systemCode === "EMFILE" || this.systemCode === "ENFILE" || this.systemCode === "ENOMEM";
  }
}

/**
 * With CAIRN_PYTHON_ENV_KEY on, a Python task's key holds its Python's version and packages: this
 * Python started but its answer to Cairn's short `python -c` could not be read (it failed, timed
 * out, or printed none), so the key cannot be made. A key without them would hit after an upgrade.
 */
export class PythonEnvironmentError extends CairnError {
  static override readonly code: string = "CAIRN_PYTHON_ENVIRONMENT";
  override name = "PythonEnvironmentError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly python: string,
    why: string,
    /** The start of what it printed on stdout. */
    printed: string,
    /** The last lines of its stderr. */
    stderrTail: string,
    /**
     * What was asked: Cairn's short `python -c` (the default), or the Jupyter kernelspecs a
     * notebook's kernel is looked up in (`python -m jupyter kernelspec list --json`).
     */
    asked: "environment" | "kernelspecs" = "environment",
  ) {
    const said = `it printed ${printed ? JSON.stringify(printed) : "nothing"}${stderrTail ? ` and on stderr: ${JSON.stringify(stderrTail)}` : ""}. `;
    super(
      asked === "kernelspecs"
        ? `The Jupyter kernels of ${python} could not be listed for the notebook task's cache key (CAIRN_PYTHON_ENV_KEY is on, and it counts the Python of the notebook's kernel): ${why}. ` +
            `Expected JSON from \`${python} -m jupyter kernelspec list --json\`; ${said}` +
            `Run \`${python} -m jupyter kernelspec list\` to see what fails (a broken Jupyter install, an unreadable kernel.json), fix it or point the task's \`python\` or CAIRN_PYTHON elsewhere, ` +
            `or turn CAIRN_PYTHON_ENV_KEY off.`
        : `The Python environment of ${python} could not be read for the task's cache key (CAIRN_PYTHON_ENV_KEY is on): ${why}. ` +
            `Expected one line of JSON from \`${python} -c ...\` (run in the system's temporary folder); ${said}` +
            `Run \`${python} -c "import sys; print(sys.version)"\` to see what fails (a sitecustomize.py, a broken install), fix that Python or point CAIRN_PYTHON elsewhere, ` +
            `or turn CAIRN_PYTHON_ENV_KEY off.`,
    );
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
    /** Used by map() or sweep(), whose other inputs are given as `with`. */
    via?: "map" | "sweep",
  ) {
    super(
      `Task "${taskName}" uses the placeholder {${placeholder}}, but no input is called "${placeholder}" ` +
        `(inputs: ${available.length ? available.map((a) => `"${a}"`).join(", ") : "none"}). ` +
        (via
          ? `Pass it with the ${via}'s other inputs in build(), e.g. ${via}(${taskName}, { ..., with: { ${placeholder}: ... } }), or fix the template. `
          : `Pass it when calling the task in build(), e.g. ${taskName}({ ${placeholder}: ... }), or fix the template. `) +
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
  /** An output error, as a function task's: the same code writes the same outputs again. */
  override get retryable(): boolean {
    return false;
  }
}
