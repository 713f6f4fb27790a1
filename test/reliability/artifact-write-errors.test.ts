/**
 * A `ctx.artifacts.write()` that the file system refuses part-way (a full disk, a file size
 * limit) fails its task with a message naming the artifact and its path: the fs error alone
 * (`ENOSPC: no space left on device, write`) names neither.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

describe("ctx.artifacts.write() cut off by the file system", () => {
  it("names the artifact and the file it could not write, and leaves no partial file", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-artifact-write-"));
    scratch.push(root);
    const code = `
      import { flow, task } from "@cairn/dsl";
      const make = task("make").run(async (_, ctx) => ({ big: await ctx.artifacts.write("data/big.bin", "x".repeat(4000)) }));
      const result = await (await flow("w").build(() => ({ big: make({}).big })).run({ tracker: false, root: ${JSON.stringify(root)}, cache: false })).wait();
      const e = result.tasks.make.error;
      console.log(JSON.stringify({ status: result.tasks.make.status, message: e?.message, dir: result.tasks.make.runId }));
    `;
    // ulimit -f counts 512-byte blocks: the write fails after the first with a real EFBIG, as a full disk does.
    const child = spawnSync("sh", ["-c", `ulimit -f 1 && exec "${process.execPath}" --import tsx --input-type=module -e '${code.replaceAll("'", "'\\''")}'`], {
      cwd: import.meta.dirname,
      encoding: "utf8",
    });
    expect(child.stderr).toBe("");
    const { status, message, dir } = JSON.parse(child.stdout) as { status: string; message: string; dir: string };
    const folder = join(root, "artifacts", dir, "data");
    expect(status).toBe("failed");
    expect(message).toBe(`ctx.artifacts.write("data/big.bin") could not write ${join(folder, "big.bin")}: EFBIG: file too large, write.`);
    expect(await readdir(folder)).toEqual([]);
  });
});
