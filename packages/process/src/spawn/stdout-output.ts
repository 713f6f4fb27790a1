/**
 * A process's stdout as `runProcess` returns it (`captureStdout`): its lines are copied as they
 * are read, unmasked (an output holding a secret is refused as any task's is, which a masked copy
 * would hide), to a file in the attempt's private temp folder, never into memory; and read back,
 * once the process has exited. The file is unlinked as soon as it is opened and written and read
 * through its open descriptor only, so nothing of it is left on disk once the descriptor is
 * closed, also when Cairn is killed (`kill -9`, out of memory) while the process runs: a secret the
 * task printed stays in no file. The returned stdout is held in memory, and as a shell task's
 * output written whole to its cache entry and record, so one past {@link STDOUT_OUTPUT_LIMIT} is
 * refused with a {@link ProcessOutputError} saying what to do instead; the copy stops there, so
 * it takes at most the limit in TMPDIR, and a shell command that prints gigabytes and writes
 * `CAIRN_OUTPUTS` costs no more (its log file still gets every byte).
 */
import { close, createWriteStream, fstat, open, read, type WriteStream } from "node:fs";
import { unlink } from "node:fs/promises";
import { promisify } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessOutputError } from "./errors.ts";
import type { LineCopy } from "./lines.ts";

/** Bytes of stdout `runProcess` returns, and a shell task's stdout output may have (64 MB). */
export const STDOUT_OUTPUT_LIMIT = 64 * 2 ** 20;

/** `bytes` in MB of 1,048,576 bytes, to one decimal place but a whole number (`64`). */
const mb = (bytes: number) => String(Number((bytes / 2 ** 20).toFixed(1)));

/** Who asked for the stdout, for the words of its errors: the shell kind (its output when it writes no $CAIRN_OUTPUTS), or any kind through `runProcess`. */
export type StdoutUse = "shell output" | "runProcess";

/** The copy of a process's stdout that `runProcess` returns: see the module comment. */
export class StdoutOutput implements LineCopy {
  /** Bytes of stdout so far (UTF-8, each line with one `\n`), counted past the limit too. */
  private bytes = 0;
  private stream: WriteStream | undefined;
  private failed: (Error & { code?: string }) | undefined;

  /** Creates the copy's file in the folder `folder` (private to the attempt) and unlinks it at once. */
  static async open(folder: string, use: StdoutUse, limit = STDOUT_OUTPUT_LIMIT): Promise<StdoutOutput> {
    const path = join(folder, "stdout.txt");
    const fd = await promisify(open)(path, "wx+", 0o600);
    await unlink(path).catch(async (error: unknown) => {
      await promisify(close)(fd);
      throw error;
    });
    return new StdoutOutput(fd, folder, use, limit);
  }

  /** Copies to the open file descriptor `fd` (of a file in `folder`), up to `limit` bytes; `open` makes one. */
  constructor(
    private readonly fd: number,
    private readonly folder: string,
    private readonly use: StdoutUse,
    private readonly limit = STDOUT_OUTPUT_LIMIT,
  ) {
    // The descriptor is closed by `release` alone: it is read after the writes end.
    this.stream = createWriteStream("", { fd, autoClose: false }).on("error", (error) => (this.failed ??= error));
  }

  get file(): WriteStream | undefined {
    return this.stream;
  }

  write(text: string): void {
    this.bytes += Buffer.byteLength(text);
    if (!this.stream) return;
    if (this.bytes <= this.limit && !this.failed) {
      this.stream.write(text);
      return;
    }
    // Past the limit it cannot be returned (after a failed write, nothing more is kept): what is copied is dropped, and its writes end.
    this.stream.destroy();
    this.stream = undefined;
  }

  /** Stops copying and waits for what was copied to be written. */
  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    if (stream && !stream.destroyed) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }

  /** Closes the file, which goes from the disk with it; after {@link close}, and {@link read} if it is read. */
  async release(): Promise<void> {
    await this.close();
    await promisify(close)(this.fd).catch(() => {});
  }

  /** The stdout (one trailing newline removed), once {@link close}d; the error when it cannot be had. */
  async read(nodeId: string): Promise<string> {
    const shell = this.use === "shell output";
    if (this.bytes > this.limit) {
      throw new ProcessOutputError(
        nodeId,
        shell
          ? `it wrote no $CAIRN_OUTPUTS, so its stdout is its \`stdout\` output, and that was ${mb(this.bytes)} MB, over the ${mb(this.limit)} MB a shell task's stdout output may be ` +
              `(an output is held by the run and written whole to its cache entry and record; the whole stdout is in the task run's logs/stdout.txt all the same). ` +
              `Write the outputs as JSON to $CAIRN_OUTPUTS instead (\`echo '{"rows": 3}' > "$CAIRN_OUTPUTS"\`), with large data in a file in $CAIRN_ARTIFACTS named there as {"$artifact": "file name"}; ` +
              `or send what is not the output elsewhere (\`> /dev/null\`, a file).`
          : `its kind reads its process's stdout (runProcess with captureStdout), which may be at most ${mb(this.limit)} MB, and it printed ${mb(this.bytes)} MB ` +
              `(the stdout is returned as one string in memory; the whole of it is in the task run's logs/stdout.txt all the same). ` +
              `In the kind, have the command write large data to a file instead of stdout (in $CAIRN_ARTIFACTS, read or returned as an artifact from there, or to $CAIRN_OUTPUTS as JSON), ` +
              `or leave captureStdout off when the stdout is not needed.`,
      );
    }
    const text = this.failed ? undefined : await this.readAll().catch((error: Error) => void (this.failed = error));
    if (text === undefined) {
      const code = this.failed?.code;
      const full = code === "ENOSPC" || code === "EDQUOT";
      throw new ProcessOutputError(
        nodeId,
        `${shell ? "it wrote no $CAIRN_OUTPUTS, so its stdout is its `stdout` output" : "its kind reads its process's stdout (runProcess with captureStdout)"}, ` +
          `but Cairn could not keep its copy, a file in ${this.folder} (${this.failed?.message})${full ? ": the temp folder is full" : ""}. ` +
          `The copy takes up to ${mb(this.limit)} MB of the temp folder while the process runs (TMPDIR is ${tmpdir()}): free space there, or point TMPDIR at a folder with room (\`TMPDIR=/var/tmp cairn run ...\`)` +
          `${shell ? ", or write the outputs as JSON to $CAIRN_OUTPUTS" : ""}.`,
      );
    }
    return text.endsWith("\n") ? text.slice(0, -1) : text;
  }

  /** The whole file, read by position: the descriptor's own position is at its end, where the writes left it. */
  private async readAll(): Promise<string> {
    const { size } = await promisify(fstat)(this.fd);
    const buffer = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await promisify(read)(this.fd, buffer, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return buffer.toString("utf8", 0, at);
  }
}
