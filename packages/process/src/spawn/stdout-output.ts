/**
 * A shell task's stdout as its output, for when the command writes no `CAIRN_OUTPUTS`: its lines
 * are copied as they are read, unmasked (an output holding a secret is refused as any task's is,
 * which a masked copy would hide), to a file in the attempt's private temp folder, never into
 * memory; and read back, once the process has exited, only when it is the output. An output is
 * held by the run and written whole to its cache entry and record, so one past
 * {@link STDOUT_OUTPUT_LIMIT} is refused with a {@link ProcessOutputError} saying what to do
 * instead; the copy stops there, so a command that prints gigabytes and writes `CAIRN_OUTPUTS`
 * costs no more than the limit on disk (its log file still gets every byte).
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { ProcessOutputError } from "./errors.ts";
import type { LineCopy } from "./lines.ts";

/** Bytes a shell task's stdout may have when it is the task's output (64 MB). */
export const STDOUT_OUTPUT_LIMIT = 64 * 2 ** 20;

/** `bytes` in MB of 1,048,576 bytes, to one decimal place but a whole number (`64`). */
const mb = (bytes: number) => String(Number((bytes / 2 ** 20).toFixed(1)));

/** The copy of a shell task's stdout that becomes its `stdout` output: see the module comment. */
export class StdoutOutput implements LineCopy {
  /** Bytes of stdout so far (UTF-8, each line with one `\n`), counted past the limit too. */
  private bytes = 0;
  private stream: WriteStream | undefined;
  private failed: Error | undefined;

  /** Copies to the file `path` (created now), up to `limit` bytes. */
  constructor(
    private readonly path: string,
    private readonly limit = STDOUT_OUTPUT_LIMIT,
  ) {
    this.stream = createWriteStream(path, { mode: 0o600 }).on("error", (error) => (this.failed ??= error));
  }

  get file(): WriteStream | undefined {
    return this.stream;
  }

  write(text: string): void {
    this.bytes += Buffer.byteLength(text);
    if (!this.stream) return;
    if (this.bytes <= this.limit) {
      this.stream.write(text);
      return;
    }
    // Past the limit it cannot be the output: what is copied is dropped, and its writes end.
    this.stream.destroy();
    this.stream = undefined;
  }

  /** Stops copying and waits for what was copied to be on disk. */
  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    if (stream && !stream.destroyed) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }

  /** The stdout as the task's output (one trailing newline removed), once {@link close}d; the error when it cannot be. */
  async read(nodeId: string): Promise<string> {
    if (this.bytes > this.limit) {
      throw new ProcessOutputError(
        nodeId,
        `it wrote no $CAIRN_OUTPUTS, so its stdout is its \`stdout\` output, and that was ${mb(this.bytes)} MB, over the ${mb(this.limit)} MB a shell task's stdout output may be ` +
          `(an output is held by the run and written whole to its cache entry and record; the whole stdout is in the task run's logs/stdout.txt all the same). ` +
          `Write the outputs as JSON to $CAIRN_OUTPUTS instead (\`echo '{"rows": 3}' > "$CAIRN_OUTPUTS"\`), with large data in a file in $CAIRN_ARTIFACTS named there as {"$artifact": "file name"}; ` +
          `or send what is not the output elsewhere (\`> /dev/null\`, a file).`,
      );
    }
    const text = this.failed ? undefined : await readFile(this.path, "utf8").catch((error: Error) => void (this.failed = error));
    if (text === undefined) {
      throw new ProcessOutputError(
        nodeId,
        `it wrote no $CAIRN_OUTPUTS, so its stdout is its \`stdout\` output, but Cairn could not keep its copy in ${this.path} (${this.failed?.message}). ` +
          `Free space in the temp folder (TMPDIR), or write the outputs as JSON to $CAIRN_OUTPUTS.`,
      );
    }
    return text.endsWith("\n") ? text.slice(0, -1) : text;
  }
}
