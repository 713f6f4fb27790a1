import { type FileHandle, open, stat } from "node:fs/promises";

/** How long a file kept open for appends stays open without appends. */
const IDLE_CLOSE_MS = 500;

/** Options of {@link JsonlAppender.append}. */
export interface AppendOptions {
  /** Called once when the file's folder is missing; the write is then tried once more. */
  onMissingFolder?: () => Promise<unknown>;
  /** Keep the file open between batches (closed after a short idle time, or by `close()`), for files appended to often. */
  keepOpen?: boolean;
  /**
   * The file may be replaced whole by a rename, or removed (`cairn runs prune` rewrites an index
   * without the lines of the runs it removed, and removes batch files with no run left): after each
   * write, the file written is checked to still be the one at `path`, and the batch is written again
   * there when it is not. A line may then be in the file twice; readers keep one.
   */
  mayBeReplaced?: boolean;
}

/**
 * Appends lines to files. Appends to one file that arrive while a write to it is
 * in flight are folded into the next single write, so a busy index costs one
 * write per batch instead of one open/write/close per line. Each batch is one
 * `O_APPEND` write: it lands whole and in order, also when other processes append
 * to the same file.
 *
 * A file that does not end in a newline (half a line left by a write that failed part-way, on a
 * full disk, or by a crash) gets one before the next batch, checked each time the file is opened:
 * the next line then stands on its own instead of being glued to the half line, which would hide
 * both. A failed write closes the file, so the next batch checks again.
 *
 * @internal
 */
export class JsonlAppender {
  /** The batch of each file that has not started writing yet; new lines join it. */
  private readonly waiting = new Map<string, { text: string; done: Promise<void> }>();
  /** The last write of each file, settled (never rejects); the next batch starts after it. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Files kept open, with their idle timers. */
  private readonly handles = new Map<string, { handle: FileHandle; timer?: NodeJS.Timeout }>();

  /** Appends `text` (whole lines, each ending in a newline) to `path`. */
  append(path: string, text: string, options: AppendOptions = {}): Promise<void> {
    const open = this.waiting.get(path);
    if (open) {
      open.text += text;
      return open.done;
    }
    const batch = { text, done: Promise.resolve() };
    this.waiting.set(path, batch);
    const previous = this.tails.get(path);
    batch.done = (async () => {
      // Yielding once (or waiting for the write in flight) lets more lines join this batch.
      await previous;
      this.waiting.delete(path);
      try {
        await this.write(path, batch.text, options);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT" || !options.onMissingFolder) throw error;
        await options.onMissingFolder();
        await this.write(path, batch.text, options);
      }
    })();
    const tail: Promise<void> = batch.done.then(
      () => this.release(path, tail),
      () => this.release(path, tail),
    );
    this.tails.set(path, tail);
    return batch.done;
  }

  /** Resolves once every append to `path` asked for so far has been written or has failed. */
  settled(path: string): Promise<void> {
    return this.tails.get(path) ?? Promise.resolve();
  }

  /** Resolves once every append asked for so far has been written or has failed. */
  async idle(): Promise<void> {
    await Promise.all(this.tails.values());
  }

  /** Waits for pending appends and closes the files kept open; appending later opens them again. */
  async close(): Promise<void> {
    await this.idle();
    await Promise.all([...this.handles.keys()].map((path) => this.closeHandle(path)));
  }

  private async write(path: string, text: string, options: AppendOptions): Promise<void> {
    const keepOpen = options.keepOpen === true;
    let kept = this.handles.get(path);
    let bytes = Buffer.from(text);
    if (!kept) {
      // "a+": appends as "a" does, and the last byte can be read.
      kept = { handle: await open(path, "a+") };
      this.handles.set(path, kept);
      try {
        if (await endsInsideLine(kept.handle)) bytes = Buffer.concat([NEWLINE, bytes]);
      } catch (error) {
        await this.closeHandle(path);
        throw error;
      }
    }
    if (kept.timer) clearTimeout(kept.timer);
    kept.timer = undefined;
    try {
      let written = 0;
      // One write() for all but pathological cases; a short write is finished rather than torn.
      while (written < bytes.length) written += (await kept.handle.write(bytes, written, bytes.length - written)).bytesWritten;
    } catch (error) {
      await this.closeHandle(path);
      throw error;
    }
    let moved = false;
    try {
      moved = options.mayBeReplaced === true && (await replaced(kept.handle, path));
    } catch (error) {
      await this.closeHandle(path);
      throw error;
    }
    if (moved) {
      // Written to a file renamed over since it was opened (the prune copies what it finds there,
      // but this write may have come after): the path's file gets the lines too.
      await this.closeHandle(path);
      await this.write(path, text, options);
      return;
    }
    if (!keepOpen) {
      await this.closeHandle(path);
      return;
    }
    kept.timer = setTimeout(() => void this.closeHandle(path), IDLE_CLOSE_MS);
    kept.timer.unref();
  }

  private async closeHandle(path: string): Promise<void> {
    const kept = this.handles.get(path);
    if (!kept) return;
    this.handles.delete(path);
    if (kept.timer) clearTimeout(kept.timer);
    await kept.handle.close().catch(() => {});
  }

  private release(path: string, tail: Promise<void>): void {
    if (this.tails.get(path) === tail) this.tails.delete(path);
  }
}

const NEWLINE = Buffer.from("\n");

/**
 * True when the open file is no longer the one at `path`: another file was renamed over it, or it
 * was removed. Compared by device and inode, not by the open file's link count: NFS keeps a file
 * renamed over while open as a `.nfsXXXX` file with one link, and a hard link elsewhere keeps it
 * linked too.
 */
async function replaced(handle: FileHandle, path: string): Promise<boolean> {
  const [mine, there] = await Promise.all([
    handle.stat({ bigint: true }),
    stat(path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    }),
  ]);
  return !there || there.ino !== mine.ino || there.dev !== mine.dev;
}

/** True when the file is not empty and its last byte is not a newline: it ends in half a line. */
async function endsInsideLine(handle: FileHandle): Promise<boolean> {
  const { size } = await handle.stat();
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  const { bytesRead } = await handle.read(last, 0, 1, size - 1);
  return bytesRead === 1 && last[0] !== 0x0a;
}
