/**
 * Text that came from a run (a task's log line, an error message, a param, a metric's name, a
 * record read from a shared MLflow server) made safe to print on a terminal. A control character
 * in it would be obeyed, not shown: `ESC[2J` clears the screen, `ESC]0;...BEL` sets the window's
 * title, `ESC]8;;url` plants a link, `\r` and `\b` rewrite what was printed, and a bidi override
 * (U+202E) shows the text after it reversed, so that what is read is not what was written. Each
 * is shown as its escape instead (`\x1b`, `\r`, `\u202e`), as `cat -v` or JSON would show it; the
 * CLI's own colours are added after, around text that went through here. `--json` output needs
 * none of this: JSON escapes control characters itself.
 */
import { keepEnd, keepStart } from "@cairn/core";

/**
 * C0 controls but tab and newline, DEL, C1 controls (U+0080–U+009F, which some terminals obey
 * too), and the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which
 * reorder the text that follows them (the "Trojan Source" trick).
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with its control characters shown as escapes; tabs and newlines kept. */
export function printable(text: string): string {
  return text.replace(CONTROL, escape);
}

/** `text` on one line: newlines shown as escapes too (a table's cell, a one-line summary). */
export function printableLine(text: string): string {
  return printable(text).replace(/\n/g, "\\n");
}

/** Characters a printed line of an error keeps; a longer one is cut in its middle ({@link cutLongLines}). */
export const ERROR_LINE_LIMIT = 1000;
/** Of a cut line: the characters kept before the cut, and after it. */
const KEPT_BEFORE = 700;
const KEPT_AFTER = 200;

/**
 * Where the whole text of an error is, said where a printed line of it is cut: the JSON events
 * carry it whole, and, when runs are recorded, a failed task's run keeps it in `cairn/error.txt`
 * (`recorded`: for a task's error; a flow's has no such file).
 */
export function wholeErrorAt(recorded: boolean): string {
  return recorded ? "its task run's artifact cairn/error.txt has the whole text, and --json prints it" : "--json prints the whole text";
}

/**
 * `text` with each line longer than {@link ERROR_LINE_LIMIT} characters cut in its middle, its
 * start and end kept around `… [N characters cut; WHERE] …`, `where` from {@link wholeErrorAt}:
 * a task's 2 MB message, printed whole on its line and again in the summary, buried the terminal.
 */
export function cutLongLines(text: string, where: string): string {
  if (text.length <= ERROR_LINE_LIMIT) return text;
  return text
    .split("\n")
    .map((line) => (line.length <= ERROR_LINE_LIMIT ? line : cutLine(line, where)))
    .join("\n");
}

function cutLine(line: string, where: string): string {
  // Never half of a surrogate pair at either side of the cut.
  const head = keepStart(line, KEPT_BEFORE);
  const tail = keepEnd(line, KEPT_AFTER);
  return `${head} … [${line.length - head.length - tail.length} characters cut; ${where}] … ${tail}`;
}

/** Each line of `text` after `prefix`, so that a line of a task's log cannot pass for one of Cairn's. */
export function prefixLines(prefix: string, text: string): string {
  return printable(text)
    .split("\n")
    .map((line) => `${prefix} ${line}`)
    .join("\n");
}

function escape(c: string): string {
  if (c === "\r") return "\\r";
  if (c === "\b") return "\\b";
  const code = c.charCodeAt(0);
  return code > 0xff ? `\\u${code.toString(16)}` : `\\x${code.toString(16).padStart(2, "0")}`;
}
