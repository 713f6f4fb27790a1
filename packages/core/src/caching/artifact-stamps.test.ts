import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { digestPath, sha256 } from "@cairn/cache";
import { ArtifactStamps } from "./artifact-stamps.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const tmp = async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-stamps-"));
  dirs.push(dir);
  return dir;
};

describe("ArtifactStamps", () => {
  it("knows a stamped file by its stat, in this process and the next, and digests it again once its size or time changed", async () => {
    const dir = await tmp();
    const file = join(dir, "out.txt");
    await writeFile(file, "payload");
    const stamps = join(dir, "artifact-stamps");
    const first = new ArtifactStamps(stamps);
    const taken = await first.describe(file);
    expect(taken.described.digest).toBe(sha256("payload"));
    await first.add("run1", [taken.stamp!]);
    // Another process: it reads the run's stamp file.
    const later = new ArtifactStamps(stamps);
    expect(await later.digestOf(file, "run1", await stat(file, { bigint: true }), { record: true })).toEqual({ digest: sha256("payload") });
    await writeFile(file, "PAYLOAD");
    expect(await later.digestOf(file, "run1", await stat(file, { bigint: true }), { record: true })).toEqual({ digest: sha256("PAYLOAD") });
    // Another run has no stamp of it: the file is read.
    expect(await later.digestOf(file, "run2", await stat(file, { bigint: true }), { record: false })).toEqual({ digest: sha256("PAYLOAD") });
  });

  it("writes the stamps of many files, added at once, all into their run's file", async () => {
    const dir = await tmp();
    const files = Array.from({ length: 200 }, (_, i) => join(dir, `f${i}.txt`));
    await Promise.all(files.map((f, i) => writeFile(f, `content ${i}`)));
    const stamps = new ArtifactStamps(join(dir, "artifact-stamps"));
    // Added one by one as each file is digested (a hit's or a download's), some while a write is under way.
    await Promise.all(files.map(async (f) => stamps.add("run1", [(await stamps.describe(f)).stamp!])));
    const written = JSON.parse(await readFile(join(dir, "artifact-stamps", "run1.json"), "utf8")) as Record<string, { digest: string }>;
    expect(Object.keys(written).sort()).toEqual([...files].sort());
    expect(written[files[7]!]!.digest).toBe(sha256("content 7"));
  });

  it("knows a stamped folder by its files' names and stats, and says which changed once one is added, removed or edited", async () => {
    const dir = await tmp();
    const folder = join(dir, "model");
    await mkdir(join(folder, "sub"), { recursive: true });
    await writeFile(join(folder, "a.bin"), "a");
    await writeFile(join(folder, "sub", "b.bin"), "b");
    const stamps = join(dir, "artifact-stamps");
    const first = new ArtifactStamps(stamps);
    const taken = await first.describe(folder);
    expect(taken.described.digest).toBe(await digestPath(folder));
    await first.add("run1", [taken.stamp!]);
    const later = new ArtifactStamps(stamps);
    const digestOf = async () => later.digestOf(folder, "run1", await stat(folder, { bigint: true }), { record: false });
    expect(await digestOf()).toEqual({ digest: taken.described.digest });
    await writeFile(join(folder, "sub", "b.bin"), "B, longer");
    await writeFile(join(folder, "c.bin"), "c");
    await rm(join(folder, "a.bin"));
    expect(await digestOf()).toEqual({ digest: await digestPath(folder), changed: { edited: ["sub/b.bin"], added: ["c.bin"], removed: ["a.bin"] } });
  });
});
