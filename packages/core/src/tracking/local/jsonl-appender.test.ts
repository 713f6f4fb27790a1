import { existsSync } from "node:fs";
import { link, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JsonlAppender } from "./jsonl-appender.ts";

const tmp = () => mkdtemp(join(tmpdir(), "cairn-appender-"));

describe("JsonlAppender", () => {
  it("ends half a line left in the file before its first write, kept open or not", async () => {
    const dir = await tmp();
    for (const keepOpen of [true, false]) {
      const path = join(dir, `${keepOpen}.jsonl`);
      await writeFile(path, '{"a":1}\n{"b":');
      const appender = new JsonlAppender();
      await appender.append(path, '{"c":3}\n', { keepOpen });
      await appender.append(path, '{"d":4}\n', { keepOpen });
      await appender.close();
      expect(await readFile(path, "utf8")).toBe('{"a":1}\n{"b":\n{"c":3}\n{"d":4}\n');
    }
  });

  it("adds nothing to an empty file or one that ends in a newline", async () => {
    const dir = await tmp();
    const appender = new JsonlAppender();
    await appender.append(join(dir, "new.jsonl"), '{"a":1}\n');
    await writeFile(join(dir, "whole.jsonl"), '{"a":1}\n');
    await appender.append(join(dir, "whole.jsonl"), '{"b":2}\n', { keepOpen: true });
    await appender.close();
    expect(await readFile(join(dir, "new.jsonl"), "utf8")).toBe('{"a":1}\n');
    expect(await readFile(join(dir, "whole.jsonl"), "utf8")).toBe('{"a":1}\n{"b":2}\n');
  });

  it.skipIf(!existsSync("/dev/full"))("after a write that fails (ENOSPC), checks the file again before the next batch", async () => {
    const dir = await tmp();
    const path = join(dir, "runs.jsonl");
    // A real ENOSPC: the path points at /dev/full.
    await symlink("/dev/full", path);
    const appender = new JsonlAppender();
    await expect(appender.append(path, '{"a":1}\n', { keepOpen: true })).rejects.toMatchObject({ code: "ENOSPC" });
    // Space is back, and the failed write had left half a line.
    await rm(path);
    await writeFile(path, '{"a":');
    await appender.append(path, '{"b":2}\n', { keepOpen: true });
    await appender.close();
    expect(await readFile(path, "utf8")).toBe('{"a":\n{"b":2}\n');
  });

  it("notices a file renamed over the one it holds open also when the old file keeps a link (NFS keeps it as .nfsXXXX), and writes the batch again there", async () => {
    const dir = await tmp();
    const path = join(dir, "runs.jsonl");
    const appender = new JsonlAppender();
    await appender.append(path, '{"a":1}\n', { keepOpen: true, mayBeReplaced: true });
    // The old file stays linked, as NFS keeps an open file renamed over: its link count never drops to 0.
    await link(path, join(dir, "old.jsonl"));
    await writeFile(join(dir, "new.jsonl"), '{"a":1}\n');
    await rename(join(dir, "new.jsonl"), path);
    await appender.append(path, '{"b":2}\n', { keepOpen: true, mayBeReplaced: true });
    await appender.close();
    expect(await readFile(path, "utf8")).toBe('{"a":1}\n{"b":2}\n');
  });

  it("writes the batch again at the path when the file it holds open was removed", async () => {
    const dir = await tmp();
    const path = join(dir, "x.batch.jsonl");
    const appender = new JsonlAppender();
    await appender.append(path, '{"a":1}\n', { keepOpen: true, mayBeReplaced: true });
    await rm(path);
    await appender.append(path, '{"b":2}\n', { keepOpen: true, mayBeReplaced: true });
    await appender.close();
    expect(await readFile(path, "utf8")).toBe('{"b":2}\n');
  });
});
