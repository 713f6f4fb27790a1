import { spawnSync } from "node:child_process";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../../../..");
const filesModule = join(repo, "packages/cache/src/backends/_files.ts");

describe("writeFileAtomic", () => {
  it("leaves no temp file when the write fails part-way (a file size limit: a real EFBIG after 512 bytes), small or large", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-files-"));
    const code = `
      import { writeFileAtomic } from ${JSON.stringify(filesModule)};
      for (const size of [10_000, 400_000]) {
        await writeFileAtomic(${JSON.stringify(dir)}, "f" + size, "x".repeat(size)).then(
          () => console.log("written"),
          (error) => console.log(error.code),
        );
      }
    `;
    // ulimit -f counts 512-byte blocks; the shell execs node, whose writes past it fail with EFBIG.
    const child = spawnSync("sh", ["-c", `ulimit -f 1 && exec "${process.execPath}" --import tsx --input-type=module -e '${code.replaceAll("'", "'\\''")}'`], { cwd: repo, encoding: "utf8" });
    expect(child.stderr).toBe("");
    expect(child.stdout.trim().split("\n")).toEqual(["EFBIG", "EFBIG"]);
    expect(await readdir(dir)).toEqual([]);
  });
});
