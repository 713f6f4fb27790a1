/**
 * The task log lines the CLI prints, kept from piling up in memory when what it prints to is read
 * slower than tasks write (`cairn run flow.ts | less`, a CI runner that reads in bursts): Node
 * keeps what a pipe has not taken yet, without bound, and a task printing 100 MB held over a GB.
 * Past {@link LOG_BACKLOG_LIMIT} bytes waiting, a line that is also in a log file (a process task's
 * stdout or stderr line, whole in its logs/stdout.txt or logs/stderr.txt) is not shown but counted
 * for its task, and once the reader has caught up (the stream's `drain`), or the run ends, one line
 * a task says how many were not shown. Every other line (`ctx.logger` of a function task, Cairn's
 * own warnings, the flow's lines) is kept in no file, so it is always shown. Pausing the tasks'
 * pipes instead would slow the tasks to the reader's pace; dropping never does.
 */
import type { Writable } from "node:stream";

/** Bytes waiting in the stream past which log lines are not shown (4 MB). */
export const LOG_BACKLOG_LIMIT = 4 * 2 ** 20;

/** Prints log lines through `show`, unless `stream` (what `show` writes to) is behind: see the module comment. */
export interface LogLines {
  /**
   * Shows `message` of `task` (undefined: the flow's); when the stream is behind, only counts it
   * if `inLogFile` (the line is whole in a log file of the task run, which the note names).
   */
  line(task: string | undefined, message: string, inLogFile: boolean): void;
  /** Says how many lines of each task were not shown since the last time, if any. */
  flush(): void;
}

/** The note that stands for `count` lines of a task not shown. */
export function notShownNote(count: number): string {
  return (
    `… ${count} line${count === 1 ? "" : "s"} of its log not shown: this output was read slower than they came ` +
    `(a process task's are all in its run's logs/stdout.txt and logs/stderr.txt)`
  );
}

/** {@link LogLines} writing to `stream` through `show`. */
export function logLines(stream: Writable, show: (task: string | undefined, message: string) => void, limit = LOG_BACKLOG_LIMIT): LogLines {
  /** Lines not shown, by task ("" for the flow's), in the order their tasks first had one. */
  const dropped = new Map<string, number>();
  /** A `drain` listener is set: only a stream that fell behind gets one (and only such a stream is an EventEmitter for sure). */
  let waiting = false;
  const flush = () => {
    if (waiting) {
      waiting = false;
      stream.off("drain", flush);
    }
    if (!dropped.size) return;
    const notes = [...dropped];
    dropped.clear();
    // A reader that went away takes no note (the stream's own guard reports it).
    if (stream.destroyed || stream.writableEnded) return;
    for (const [task, count] of notes) show(task || undefined, notShownNote(count));
  };
  return {
    line(task, message, inLogFile) {
      if (inLogFile && stream.writableLength > limit) {
        // Past the limit the last write returned false, so `drain` comes once the reader caught up.
        if (!waiting) {
          waiting = true;
          stream.once("drain", flush);
        }
        dropped.set(task ?? "", (dropped.get(task ?? "") ?? 0) + 1);
        return;
      }
      flush();
      show(task, message);
    },
    flush,
  };
}
