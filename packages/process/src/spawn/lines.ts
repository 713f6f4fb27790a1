/**
 * Reading a child's stdout or stderr line by line in bounded memory, whatever it writes.
 *
 * Lines end at `\n` or `\r\n`. A lone `\r` (not followed by `\n`: a progress bar's update) starts
 * its line over, as on a terminal, and the text after it is the line's next state, replacing the
 * earlier one whole: a line's final state is the line (3,000 tqdm updates and what follows them on
 * that line are one line, not 3,000, which would push a traceback out of the stderr tail). Only
 * final states are written to the log file, copied, and handed to `onLine`; an earlier state is
 * handed to `onUpdate` (the terminal), and only once the `\r` after it shows it is whole, so a
 * secret arriving in two writes is never shown cut; at most one every {@link UPDATE_MS}, the
 * newest (a bar updated 100 times a second must not print 100 lines a second). So a bar that
 * writes `\r` before each frame (tqdm) shows a frame when the next one comes, or its line ends. A
 * state past {@link PIECE} characters was written to the file as it arrived: when a `\r` replaces
 * it, it stays there as a line of its own.
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
  /** Where whole lines (their final states) are copied, unmasked. */
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

/** A line's end, or a lone `\r` (one match, of length 1, at a `\r`). */
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
 * Reads `stream` to its end (or until it is destroyed), writing each line (its final state) to
 * `file` masked and calling `onLine` for it; resolves when the stream is done. `copy`, when given,
 * receives each whole line; `onUpdate`, a `\r`-updated line's earlier states. Pauses the stream
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
  /** The current state of the line (its text since a lone `\r`), while it is short. */
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
  /** A lone `\r` came after the current state: text after it starts the line's next state (a `\n` ends the line). */
  let returned = false;
  /** The newest state a `\r` ended that is not handed to onUpdate yet, waiting for UPDATE_MS to pass; and the timer that hands it on then. */
  let waiting: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  /** When a state was last handed to onUpdate, and which one, while its line goes on. */
  let shownAt = -Infinity;
  let shownText: string | undefined;
  /** Handles a failure where no stream handler catches it (the timer): set once the promise is made. */
  let fail: (error: unknown) => void = () => {};

  /** The line `text`, masked as `masked`, as it is handed on: cut to LINE_LIMIT characters. */
  const handed = (text: string, masked: string, shown: boolean): Line => {
    if (text.length <= LINE_LIMIT) return { text, masked, more: 0, shown };
    // Cut what was masked, so no secret's start is handed on unmasked.
    const cut = head(masked, LINE_LIMIT);
    const rawCut = head(text, LINE_LIMIT).length;
    return { text: cut, masked: cut, more: Buffer.byteLength(text) - Buffer.byteLength(text.slice(0, rawCut)), shown };
  };

  const shortLine = (text: string, shown: boolean) => {
    const masked = mask(text);
    file.write(`${masked}\n`);
    copy?.write(`${text}\n`);
    onLine(handed(text, masked, shown));
  };

  /** Hands the waiting state to onUpdate. */
  const showWaiting = () => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting === undefined) return;
    shownText = waiting;
    waiting = undefined;
    shownAt = performance.now();
    onUpdate!(handed(shownText, mask(shownText), false));
  };

  /** `text`, a state a lone `\r` ended, is handed to onUpdate now, or when UPDATE_MS have passed since the last (unless its line ends first). */
  const offer = (text: string) => {
    waiting = text;
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

  /** The line ended: its states waiting are no longer shown, its final state is. */
  const lineDone = () => {
    waiting = shownText = undefined;
    returned = false;
    if (timer) clearTimeout(timer);
    timer = undefined;
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

  const endLong = (text: string) => {
    carry += text;
    dropFinished();
    file.write(`${mask(carry)}\n`);
    more += Buffer.byteLength(text);
    copy?.write(`${text}\n`);
    onLine({ text: start, masked: start, more, shown: false });
    long = false;
    carry = start = behind = "";
    more = 0;
  };

  /** The line ends (`\n`, `\r\n`, the stream's end) with its current state. */
  const endLine = () => {
    const shown = shownText;
    lineDone();
    if (long) return endLong("");
    const text = pending;
    pending = "";
    shortLine(text, text === shown);
  };

  /** A lone `\r` (or one whose `\n` may start the next chunk): the current state is whole. */
  const carriageReturn = () => {
    if (returned) return;
    returned = true;
    if (onUpdate && !long && pending) offer(pending);
  };

  /** Text of the line: after a `\r`, it starts the line's next state. */
  const addText = (text: string) => {
    if (returned) {
      returned = false;
      // A long state is in the file already: it stays there as a line.
      if (long) endLong("");
      pending = "";
    }
    if (long) return addLong(text);
    pending += text;
    if (pending.length > PIECE) {
      const whole = pending;
      pending = "";
      goLong(whole);
    }
  };

  const push = (chunk: string) => {
    let at = 0;
    LINE_END.lastIndex = 0;
    for (let m = LINE_END.exec(chunk); m !== null; m = LINE_END.exec(chunk)) {
      if (m.index > at) addText(chunk.slice(at, m.index));
      at = LINE_END.lastIndex;
      // A `\r` at the chunk's end may be half of a `\r\n`: the state stays until what follows says.
      if (at - m.index === 1 && chunk.charCodeAt(m.index) === 13) carriageReturn();
      else endLine();
    }
    if (at < chunk.length) addText(at === 0 ? chunk : chunk.slice(at));
  };

  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      try {
        if (long || pending) endLine();
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
