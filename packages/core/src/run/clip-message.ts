/**
 * An error message cut short for the places that show many of them at once (a failed flow's
 * error, which names each failed task's). A failure is told at both ends: its first line says what
 * failed (`Task "fit": \`python fit.py\` exited with code 1`) and its last lines what went wrong
 * (a Python traceback ends with its exception), so both ends are kept and the middle is left out.
 */

/** Room for the note of what was left out: "\n… (N lines left out)\n" with N of up to 9 digits. */
const NOTE_CHARS = 32;

/**
 * `message` in at most about `maxChars` characters: its first line (cut at about half of them when
 * longer) and as many of its last lines as fit, with `… (N lines left out)` between; a one-line
 * message keeps its start and its end. A message that fits is returned as it is.
 */
export function clipMessage(message: string, maxChars: number): string {
  if (message.length <= maxChars) return message;
  const room = Math.max(maxChars - NOTE_CHARS, 2);
  const lines = message.split("\n");
  const first = lines[0]!;
  if (lines.length === 1) {
    const head = Math.ceil(room / 2);
    return `${keepStart(first, head)} … (${first.length - room} characters left out) … ${keepEnd(first, room - head)}`;
  }
  const head = first.length > Math.ceil(room / 2) ? `${keepStart(first, Math.ceil(room / 2) - 1)}…` : first;
  let left = room - head.length;
  const tail: string[] = [];
  for (let i = lines.length - 1; i >= 1; i--) {
    const line = lines[i]!;
    if (line.length + 1 > left) {
      // The last line alone too long: its end, where an exception's message is read to.
      if (!tail.length) tail.push(`…${keepEnd(line, Math.max(left - 2, 1))}`);
      break;
    }
    tail.unshift(line);
    left -= line.length + 1;
  }
  const out = lines.length - 1 - tail.length;
  return [head, ...(out ? [`… (${out} ${out === 1 ? "line" : "lines"} left out)`] : []), ...tail].join("\n");
}

/** The first `n` UTF-16 units of `s`, not ending inside a surrogate pair. */
export function keepStart(s: string, n: number): string {
  const c = s.charCodeAt(n - 1);
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n);
}

/** The last `n` UTF-16 units of `s`, not starting inside a surrogate pair. */
export function keepEnd(s: string, n: number): string {
  const start = s.length - n;
  const c = s.charCodeAt(start);
  return s.slice(c >= 0xdc00 && c <= 0xdfff ? start + 1 : start);
}
