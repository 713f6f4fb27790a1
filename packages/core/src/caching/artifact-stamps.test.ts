import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { digestPath, sha256 } from "@cairn/cache";
import { ArtifactStamps } from "./artifact-stamps.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const run = promisify(execFile);
/** A time of the past, in seconds: what `touch -d` and `cp -p` set. */
const PAST = 1_700_000_000;
/** Longer than a tick of the file system's clock (a few ms): a change made after it has a later change time. */
const TICK_MS = 30;

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

  it("digests again a file rewritten in place with its size and time kept: cp -p from a file of the same size and time, an edit with touch -d", async () => {
    const dir = await tmp();
    const [part0, part1] = [join(dir, "part-0"), join(dir, "part-1")];
    await writeFile(part0, "aaaa");
    await writeFile(part1, "bbbb");
    await utimes(part0, PAST, PAST);
    await utimes(part1, PAST, PAST);
    const stamps = new ArtifactStamps(join(dir, "artifact-stamps"));
    await stamps.add("run1", [(await stamps.describe(part0)).stamp!]);
    const digestOf = async () => stamps.digestOf(part0, "run1", await stat(part0, { bigint: true }), { record: true });
    expect(await digestOf()).toEqual({ digest: sha256("aaaa") });
    const before = await stat(part0, { bigint: true });
    await sleep(TICK_MS);
    // GNU cp writes into the file there (same inode) and copies the time: size, time and inode as stamped.
    await run("cp", ["-p", part1, part0]);
    const after = await stat(part0, { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    expect(await digestOf()).toEqual({ digest: sha256("bbbb") });
    // Stamped again as it is now; an edit that sets its time back is seen as well.
    expect(await digestOf()).toEqual({ digest: sha256("bbbb") });
    await sleep(TICK_MS);
    await writeFile(part0, "cccc");
    await run("touch", ["-d", `@${PAST}`, part0]);
    expect((await stat(part0, { bigint: true })).mtimeNs).toBe(before.mtimeNs);
    expect(await digestOf()).toEqual({ digest: sha256("cccc") });
  });

  it("digests again a folder whose file was rewritten in place with its size and time kept (cp -p, touch -d), naming it", async () => {
    const dir = await tmp();
    const folder = join(dir, "model");
    await mkdir(folder);
    const [part0, part1] = [join(folder, "part-0"), join(folder, "part-1")];
    await writeFile(part0, "aaaa");
    await writeFile(part1, "bbbb");
    await utimes(part0, PAST, PAST);
    await utimes(part1, PAST, PAST);
    const stamps = new ArtifactStamps(join(dir, "artifact-stamps"));
    const taken = await stamps.describe(folder);
    await stamps.add("run1", [taken.stamp!]);
    const digestOf = async () => stamps.digestOf(folder, "run1", await stat(folder, { bigint: true }), { record: true });
    expect(await digestOf()).toEqual({ digest: taken.described.digest });
    await sleep(TICK_MS);
    await run("cp", ["-p", part1, part0]);
    expect(await digestOf()).toEqual({ digest: await digestPath(folder), changed: { edited: ["part-0"], added: [], removed: [] } });
    const copied = await digestPath(folder);
    expect(await digestOf()).toEqual({ digest: copied });
    await sleep(TICK_MS);
    await writeFile(part1, "cccc");
    await run("touch", ["-d", `@${PAST}`, part1]);
    expect(await digestOf()).toEqual({ digest: await digestPath(folder), changed: { edited: ["part-1"], added: [], removed: [] } });
  });

  it("reads a stamp written before change times were stamped: the file is digested once and stamped again", async () => {
    const dir = await tmp();
    const file = join(dir, "out.txt");
    await writeFile(file, "payload");
    const info = await stat(file, { bigint: true });
    await mkdir(join(dir, "artifact-stamps"));
    // An older Cairn's stamp: size and time only (its digest made wrong here, to tell a trusted stamp from a read).
    const old = { [file]: { digest: sha256("stale"), size: Number(info.size), mtimeNs: String(info.mtimeNs) } };
    await writeFile(join(dir, "artifact-stamps", "run1.json"), JSON.stringify(old));
    const stamps = new ArtifactStamps(join(dir, "artifact-stamps"));
    expect(await stamps.digestOf(file, "run1", info, { record: true })).toEqual({ digest: sha256("payload") });
    const written = JSON.parse(await readFile(join(dir, "artifact-stamps", "run1.json"), "utf8")) as Record<string, { digest: string; ctimeNs?: string }>;
    expect(written[file]).toEqual({ digest: sha256("payload"), size: Number(info.size), mtimeNs: String(info.mtimeNs), ctimeNs: String(info.ctimeNs) });
  });

  it("sees an edit to a file named __proto__ in a stamped folder, in this process and the next", async () => {
    const dir = await tmp();
    const folder = join(dir, "model");
    await mkdir(folder);
    await writeFile(join(folder, "__proto__"), "weights");
    await writeFile(join(folder, "config.json"), "{}");
    const stamps = join(dir, "artifact-stamps");
    const first = new ArtifactStamps(stamps);
    const taken = await first.describe(folder);
    await first.add("run1", [taken.stamp!]);
    const written = JSON.parse(await readFile(join(stamps, "run1.json"), "utf8")) as Record<string, { files: Record<string, string> }>;
    expect(Object.keys(written[folder]!.files).sort()).toEqual(["__proto__", "config.json"]);
    await writeFile(join(folder, "__proto__"), "other weights, longer");
    const changed = { digest: await digestPath(folder), changed: { edited: ["__proto__"], added: [], removed: [] } };
    expect(await first.digestOf(folder, "run1", await stat(folder, { bigint: true }), { record: false })).toEqual(changed);
    expect(await new ArtifactStamps(stamps).digestOf(folder, "run1", await stat(folder, { bigint: true }), { record: false })).toEqual(changed);
  });
});
