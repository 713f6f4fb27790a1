import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { pathExists } from "./_files.ts";

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

describe("pathExists (one helper for the index by task and the task cache)", () => {
  it("is true for a file, a folder and a link to either, false for nothing and a link to nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-files-"));
    await writeFile(join(dir, "file"), "x");
    await mkdir(join(dir, "folder"));
    await symlink("file", join(dir, "to-file"));
    await symlink("folder", join(dir, "to-folder"));
    await symlink("gone", join(dir, "dangling"));
    const names = ["file", "folder", "to-file", "to-folder", "missing", "dangling"];
    const seen = await Promise.all(names.map((name) => pathExists(join(dir, name))));
    expect(Object.fromEntries(names.map((name, i) => [name, seen[i]]))).toEqual({ file: true, folder: true, "to-file": true, "to-folder": true, missing: false, dangling: false });
  });
});
