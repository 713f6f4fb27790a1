/**
 * Reading a child's stdout or stderr line by line in bounded memory, whatever it writes.
 *
 * What is kept and what is shown differ for a lone `\r` (one not followed by `\n`). Kept, in the
 * log file and the copy, lines end at `\n`, `\r\n` or a lone `\r`, as Node's readline splits them:
 * a file with `\r` line endings (an old Mac or Excel export, a device's) is its lines, none
 * dropped, and a progress bar's updates are lines of their own. Shown, a lone `\r` starts its line
 * over, as on a terminal: the lines it ends are the line's states, and the last one is the line.
 * `onLine` gets each line's final state (the line a `\n`, `\r\n` or the stream's end ended, or,
 * when nothing came after the last `\r`, the state before it: a `\r` with no text after it changes
 * nothing shown), so 3,000 tqdm updates do not push a traceback out of the stderr tail. `onUpdate`
 * (the terminal) gets the states before it, each once the `\r` after it shows it is whole, so a
 * secret arriving in two writes is never shown cut; at most one every {@link UPDATE_MS}, the
 * newest (a bar updated 100 times a second must not print 100 lines a second). So a bar that
 * writes `\r` before each frame (tqdm) shows a frame when the next one comes, or its line ends.
 *
 * Each line is written, masked, to its log file, and handed on (to the logger, the stderr tail)
 * at most {@link LINE_LIMIT} characters long: a longer line is handed
 * on as its start and a note of how many bytes were left out, while its log file still gets
 * every byte. Such a line is never held whole: past {@link PIECE} characters it is written to
 * the file in pieces as it arrives, masked with {@link MASK_OVERLAP} characters of what follows
 * each cut held back, and no cut falls inside a known secret (see {@link LineMasking.safeCut}).
 * A copy of the whole lines, unmasked, can be taken as they are read (a shell task's stdout, which
 * may be its output: see stdout-output.ts); it too gets a long line in pieces, never joined here.
 *
 * Short lines, nearly all of them, take one regex match, one mask and one write each, as with
 * readline.
 */
import type { WriteStream } from "node:fs";
import type { Readable } from "node:stream";

/** Characters of a line that reach the logger and the stderr tail; the rest is counted, not kept. */
export const LINE_LIMIT = 8192;
/** A line still unfinished past this many characters is written to its log file in pieces. */
export const PIECE = 64 * 1024;
/** Characters kept after each cut of a long line so that a secret (up to this long) spanning the cut is found whole. */
export const MASK_OVERLAP = 16 * 1024;
/** Milliseconds between two states of `\r`-updated lines handed to `onUpdate`: about what a reader can follow. */
export const UPDATE_MS = 1000;

/** A line as it is handed on: `text` is the line, or its first {@link LINE_LIMIT} characters when `more` bytes were cut. */
export interface Line {
  /** The line (unmasked), or when cut, its masked start. */
  text: string;
  /** `text` with secrets masked (the same string when nothing was masked). */
  masked: string;
  /** Bytes of the line left out of `text` (0 for a whole line). */
  more: number;
  /** This final state was handed to `onUpdate` already, unchanged (its `\r` came before its line's end): the terminal shows it. */
  shown: boolean;
}

/** What {@link pumpLines} does besides writing the log file and calling `onLine`. */
export interface PumpOptions {
  /** Where whole lines (every one a lone `\r` ended too, as in the log file) are copied, unmasked. */
  copy?: LineCopy | undefined;
  /** Called with a line's state that a lone `\r` ended, at most once every {@link UPDATE_MS} (the newest); never with a final state. */
  onUpdate?: ((line: Line) => void) | undefined;
}

/** Where whole lines are copied, unmasked, as they are read: each line's text, in one or more parts, then `\n`. */
export interface LineCopy {
  /** The next part of a line; `\n` ends one. */
  write(text: string): void;
  /** The file the copy is written to, waited for as the log file is while it is behind; undefined once it takes no more. */
  readonly file: WriteStream | undefined;
}

/** How lines are masked: by the run's secrets (a task's ctx is one). */
export interface LineMasking {
  /** `text` with every known secret masked. */
  mask(text: string): string;
  /** A cut of `text` at or near `at` that no known secret spans (see SecretRegistry.safeCut). */
  safeCut(text: string, at: number): number;
}

/** A line's end; of length 1 at a `\r`, a lone `\r`. */
const LINE_END = /\r\n|\n|\r/g;

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;

/** The first `n` characters of `text`, not splitting a surrogate pair. */
function head(text: string, n: number): string {
  if (text.length <= n) return text;
  return text.slice(0, isHighSurrogate(text.charCodeAt(n - 1)) ? n - 1 : n);
}

/** `text` with " … (N more bytes<where>)" when `more` bytes of its line were left out. */
export function withCutNote(text: string, more: number, where = ""): string {
  return more > 0 ? `${text} … (${more} more bytes${where})` : text;
}

/**
 * Reads `stream` to its end (or until it is destroyed), writing each line (a lone `\r` ends one
 * too) to `file` masked and calling `onLine` for each line's final state; resolves when the stream
 * is done. `copy`, when given, receives each whole line; `onUpdate`, a `\r`-updated line's earlier
 * states. Pauses the stream
 * while `file` (or the copy's) is behind, so a fast writer waits for the disk. Should handling a chunk throw (a bug: nothing here holds more than a piece), the
 * promise rejects with that error and the rest of the stream is read and dropped, so the process
 * writing it is not blocked and the error does not escape from a stream handler.
 */
export function pumpLines(
  stream: Readable,
  file: WriteStream,
  secrets: LineMasking,
  onLine: (line: Line) => void,
  { copy, onUpdate }: PumpOptions = {},
): Promise<void> {
  const mask = (text: string) => secrets.mask(text);
  /** A cut of a long line's `text` at or before `at`, or past a chain of secrets there, that splits neither a secret nor a surrogate pair. */
  const cutAt = (text: string, at: number) => secrets.safeCut(text, isHighSurrogate(text.charCodeAt(at - 1)) ? at - 1 : at);
  /** The current line's start, while it is short. */
  let pending = "";
  /** The current line passed PIECE characters: it is being written in pieces. */
  let long = false;
  /** Long line: its start as handed on (masked, LINE_LIMIT characters), and the bytes after it. */
  let start = "";
  let more = 0;
  /** Long line: what is not written to the file yet (unmasked). */
  let carry = "";
  /**
   * Long line: when the last piece was cut after secrets that overlap one another, the text
   * before `carry` (up to MASK_OVERLAP characters): a secret begun there may go on in `carry`.
   */
  let behind = "";
  /** The last chunk ended with `\r`: a `\n` starting the next one belongs to it. */
  let skipLF = false;
  /** The shown line's newest state a lone `\r` ended (not an empty one): its final state unless text follows. */
  let state: Line | undefined;
  /** The newest state not handed to onUpdate yet, waiting for UPDATE_MS to pass; and the timer that hands it on then. */
  let waiting: Line | undefined;
  let timer: NodeJS.Timeout | undefined;
  /** When a state was last handed to onUpdate, and which one, while its line goes on. */
  let shownAt = -Infinity;
  let shown: Line | undefined;
  /** Handles a failure where no stream handler catches it (the timer): set once the promise is made. */
  let fail: (error: unknown) => void = () => {};

  /** Hands the waiting state to onUpdate. */
  const showWaiting = () => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting === undefined) return;
    shown = waiting;
    waiting = undefined;
    shownAt = performance.now();
    onUpdate!(shown);
  };

  /** `line`, a state a lone `\r` ended, is handed to onUpdate now, or when UPDATE_MS have passed since the last (unless its line ends first). */
  const offer = (line: Line) => {
    waiting = line;
    const wait = shownAt + UPDATE_MS - performance.now();
    if (wait <= 0) return showWaiting();
    timer ??= setTimeout(() => {
      try {
        showWaiting();
      } catch (error) {
        fail(error);
      }
    }, wait).unref();
  };

  /** The shown line is done: its states waiting are no longer shown. */
  const lineDone = () => {
    state = waiting = shown = undefined;
    if (timer) clearTimeout(timer);
    timer = undefined;
  };

  /**
   * A kept line ended: by a lone `\r` (`returned`), it is a state of the shown line, which goes
   * on; else the shown line ends, with it as its final state, or with the state before when it is
   * empty (nothing came after the last `\r`: a terminal still shows that state).
   */
  const ended = (line: Line, returned: boolean) => {
    const empty = line.text === "" && line.more === 0;
    if (returned) {
      if (empty) return;
      state = line;
      if (onUpdate) offer(line);
      return;
    }
    const last = empty && state ? state : line;
    const wasShown = last === shown;
    lineDone();
    onLine({ ...last, shown: wasShown });
  };

  /** The kept line `text` ends (a lone `\r` ended it when `returned`): written, copied and handed on. */
  const shortLine = (text: string, returned: boolean) => {
    const masked = mask(text);
    file.write(`${masked}\n`);
    copy?.write(`${text}\n`);
    if (text.length <= LINE_LIMIT) return ended({ text, masked, more: 0, shown: false }, returned);
    // Cut what was masked, so no secret's start is handed on unmasked.
    const cut = head(masked, LINE_LIMIT);
    const rawCut = head(text, LINE_LIMIT).length;
    ended({ text: cut, masked: cut, more: Buffer.byteLength(text) - Buffer.byteLength(text.slice(0, rawCut)), shown: false }, returned);
  };

  /** Starts writing the current line in pieces: `text` is its first PIECE+ characters. */
  const goLong = (text: string) => {
    long = true;
    const raw = head(text, LINE_LIMIT);
    // Masked up to a cut outside secrets: a secret cut in two there would not be recognised.
    start = head(mask(text.slice(0, cutAt(text, LINE_LIMIT + MASK_OVERLAP))), LINE_LIMIT);
    more = Buffer.byteLength(text) - Buffer.byteLength(raw);
    carry = text;
    copy?.write(text);
    flushLong();
  };

  const addLong = (text: string) => {
    more += Buffer.byteLength(text);
    carry += text;
    copy?.write(text);
    if (carry.length >= PIECE + MASK_OVERLAP) flushLong();
  };

  /**
   * Writes the long line's carry but its last MASK_OVERLAP characters, cut where no secret spans:
   * before the secret across the cut, or, when secrets overlap back to the carry's start, after
   * them. So what is written and held is never more than the carry (under PIECE + MASK_OVERLAP
   * characters and one chunk of the stream) and `behind` (MASK_OVERLAP characters).
   */
  const flushLong = () => {
    dropFinished();
    const at = carry.length - MASK_OVERLAP;
    if (at <= 0) return;
    const cut = cutAt(carry, at);
    file.write(mask(carry.slice(0, cut)));
    // Cut after overlapping secrets, which may go on past the cut: see dropFinished.
    behind = cut > at ? carry.slice(Math.max(0, cut - MASK_OVERLAP), cut) : "";
    carry = carry.slice(cut);
  };

  /**
   * Drops from the start of `carry` what finishes secrets begun in `behind`: the piece before
   * ended with them masked (`***`), and masked whole they would be that same `***`, so the file
   * reads as the line masked whole. Runs only after a cut after overlapping secrets.
   */
  const dropFinished = () => {
    if (!behind) return;
    const joined = behind + carry;
    const at = behind.length;
    const back = secrets.safeCut(joined, at);
    if (back === at) {
      behind = ""; // none goes on (`carry` holds what follows the cut: at least MASK_OVERLAP characters, or the line's end)
      return;
    }
    // The secrets across the old cut start in `behind` (back < at), or at its start (back > at: their end).
    const end = back > at ? back : back + secrets.safeCut(joined.slice(back), at - back);
    const finished = Math.min(end - at, carry.length);
    behind = joined.slice(Math.max(0, at + finished - MASK_OVERLAP), at + finished);
    carry = carry.slice(finished);
  };

  const endLong = (text: string, returned: boolean) => {
    carry += text;
    dropFinished();
    file.write(`${mask(carry)}\n`);
    more += Buffer.byteLength(text);
    copy?.write(`${text}\n`);
    const line = { text: start, masked: start, more, shown: false };
    long = false;
    carry = start = behind = "";
    more = 0;
    ended(line, returned);
  };

  /** The kept line ends with `text`, at a lone `\r` when `returned`. */
  const endLine = (text: string, returned: boolean) => {
    if (long) return endLong(text, returned);
    if (pending) {
      text = pending + text;
      pending = "";
    }
    shortLine(text, returned);
  };

  const push = (chunk: string) => {
    let at = 0;
    if (skipLF) {
      skipLF = false;
      if (chunk.charCodeAt(0) === 10) {
        at = 1;
        // The `\r` before it ended the kept line; the `\n` ends the shown one.
        ended({ text: "", masked: "", more: 0, shown: false }, false);
      }
    }
    LINE_END.lastIndex = at;
    for (let m = LINE_END.exec(chunk); m !== null; m = LINE_END.exec(chunk)) {
      const end = LINE_END.lastIndex;
      // A `\r` at the chunk's end may be half of a `\r\n`: skipLF sees to a `\n` that follows it.
      endLine(chunk.slice(at, m.index), end - m.index === 1 && chunk.charCodeAt(m.index) === 13);
      at = end;
    }
    if (at === chunk.length) {
      if (chunk.charCodeAt(at - 1) === 13) skipLF = true;
      return;
    }
    const rest = at === 0 ? chunk : chunk.slice(at);
    if (long) return addLong(rest);
    pending += rest;
    if (pending.length > PIECE) {
      const text = pending;
      pending = "";
      goLong(text);
    }
  };

  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      try {
        if (long || pending) endLine("", false);
        // The last `\r` had nothing after it: the state before it is the line's final one.
        else if (state) ended({ text: "", masked: "", more: 0, shown: false }, false);
      } catch (error) {
        return reject(error);
      } finally {
        lineDone();
      }
      resolve();
    };
    /** A file written to that is behind, unless it failed (a full disk): then it is best effort, and the process must not block on a pipe nobody reads. */
    const lagging = () => [file, copy?.file].find((f) => f !== undefined && f.writableNeedDrain && !f.destroyed && !f.errored);
    fail = (error: unknown) => {
      if (done) return;
      // The rest is read and dropped: the process writing it must not block on a full pipe.
      done = true;
      lineDone();
      stream.off("data", onData).on("data", () => {});
      reject(error);
    };
    const onData = (chunk: string) => {
      try {
        push(chunk);
      } catch (error) {
        return fail(error);
      }
      // Output waits for the log file (and the copy).
      const slow = lagging();
      if (slow && !stream.isPaused()) {
        stream.pause();
        const resume = () => {
          slow.off("drain", resume).off("error", resume).off("close", resume);
          stream.resume();
        };
        slow.on("drain", resume).on("error", resume).on("close", resume);
      }
    };
    stream.setEncoding("utf8");
    stream.on("data", onData);
    stream.once("end", finish);
    stream.once("close", finish);
    stream.once("error", finish);
  });
}
