import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import objectHash from "object-hash";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { canonicalText } from "./hash.ts";
import { describeCodeFolder, describePath, digestFile, digestFileSync, digestPath, FILES_RECORDED, hashValue, listFolder, sha256 } from "./index.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-hash-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hashValue", () => {
  it("is object-hash's own sha256 of the value (passthrough plus one sha256 changes nothing)", () => {
    const options = { algorithm: "sha256", encoding: "hex", respectType: false, unorderedObjects: true, unorderedArrays: false, unorderedSets: true } as const;
    for (const value of [{ a: 1, b: [1, 2, { c: "x" }], d: undefined, e: null, when: new Date(0), set: new Set([3, 1]) }, undefined, "héllo\u0000", [2, 1]]) {
      expect(hashValue(value)).toBe(objectHash({ value }, options));
    }
  });

  it("makes object-hash's own text for JSON-like values, character for character, and leaves the rest to it", () => {
    const passthrough = { algorithm: "passthrough", respectType: false, unorderedObjects: true, unorderedArrays: false, unorderedSets: true } as const;
    const shared = { s: 1 };
    const cyclic: Record<string, unknown> = { a: [1] };
    cyclic.self = cyclic;
    (cyclic.a as unknown[]).push(cyclic);
    const holes = [1, , 3]; // eslint-disable-line no-sparse-arrays
    const nullProto = Object.assign(Object.create(null) as object, { b: 2, a: [null] });
    const fixed: unknown[] = [
      undefined, null, true, false, 0, 1.5, -3e-7, 1e21, Number.NaN, Number.POSITIVE_INFINITY, "", "x", "héllo\u0000 ☃ 😀", "\ud800",
      [], {}, [[]], [{}, []], { a: undefined }, { "": 1, "b:c": ",", "10": 1, "9": 2, B: 3, a: 4 },
      { i: 5, deps: [3, 17] }, [shared, shared, { x: shared }], cyclic, holes, nullProto,
      { schemaVersion: 2, taskName: "work", taskVersion: null, code: "ab", inputs: { i: "cd" }, env: {} },
    ];
    for (const value of fixed) expect(canonicalText(value)).toBe(objectHash({ value }, passthrough));
    // Random JSON-like values, with repeated objects.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pool: object[] = [];
    const make = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return [null, undefined, true, rand() * 1000 - 500, Math.floor(rand() * 100), `s${Math.floor(rand() * 50)}é`][Math.floor(rand() * 6)];
      if (r < 0.4 && pool.length) return pool[Math.floor(rand() * pool.length)];
      const made: object =
        r < 0.7
          ? Array.from({ length: Math.floor(rand() * 4) }, () => make(depth + 1))
          : Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [`k${Math.floor(rand() * 20)}`, make(depth + 1)]));
      pool.push(made);
      return made;
    };
    for (let i = 0; i < 500; i++) {
      const value = make(0);
      expect(canonicalText(value)).toBe(objectHash({ value }, passthrough));
    }
    // Not JSON-like: object-hash's text is used, so the hash is what it always was.
    const options = { ...passthrough, algorithm: "sha256", encoding: "hex" } as const;
    class Point {
      x = 1;
    }
    for (const value of [new Date(0), new Set([2, 1]), new Map([["a", 1]]), Buffer.from("x"), new Point(), [new Point()], { when: new Date(1) }, 10n, /re/]) {
      expect(canonicalText(value)).toBeUndefined();
      expect(hashValue(value)).toBe(objectHash({ value }, options));
    }
  });

  it("gives every string its own hash, also one with a lone surrogate (which UTF-8 cannot hold)", () => {
    const options = { algorithm: "sha256", encoding: "hex", respectType: false, unorderedObjects: true, unorderedArrays: false, unorderedSets: true } as const;
    // "ab" and half an emoji, as `s.slice(0, 3)` leaves it, against the other half and U+FFFD.
    const alike = [
      ["ab\uD83D", "ab\uD83E", "ab\uFFFD", "ab\uDE00", "ab\\uD83D", "ab"],
      [{ "\uD83D": 1 }, { "\uD83E": 1 }, { "\uFFFD": 1 }],
      // Not JSON-like (a Date), so object-hash makes the text.
      [{ s: "\uD83D", when: new Date(0) }, { s: "\uD83E", when: new Date(0) }, { s: "\uFFFD", when: new Date(0) }],
    ];
    for (const values of alike) expect(new Set(values.map(hashValue)).size).toBe(values.length);
    // A well-formed string keeps the hash it always had, whole emoji and U+FFFD included.
    for (const value of ["ab\uFFFD", "ab\uD83D\uDE00", { "\uFFFD": "\uD83D\uDE00" }, { s: "\uFFFD", when: new Date(0) }]) {
      expect(hashValue(value)).toBe(objectHash({ value }, options));
    }
  });

  it("ignores object key order at every depth but not array order", () => {
    expect(hashValue({ a: 1, b: { c: 2, d: [1, 2] } })).toBe(hashValue({ b: { d: [1, 2], c: 2 }, a: 1 }));
    expect(hashValue([1, 2])).not.toBe(hashValue([2, 1]));
    expect(hashValue({ a: 1 })).not.toBe(hashValue({ a: "1" }));
    expect(hashValue(undefined)).not.toBe(hashValue(null));
    expect(hashValue({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });

  it("tells -0 from 0, as a task handed one can (object-hash writes both as 0), and only there", () => {
    expect(hashValue({ x: -0 })).not.toBe(hashValue({ x: 0 }));
    expect(hashValue([-0, [{ y: -0 }]])).not.toBe(hashValue([0, [{ y: 0 }]]));
    expect(canonicalText(-0)).toBe("object:1:string:5:value:number:-0,");
    expect(canonicalText(0)).toBe("object:1:string:5:value:number:0,");
  });

  it("is a fixed value, so it is the same on every machine and release", () => {
    // If this changes, every cache key changes: bump CACHE_SCHEMA_VERSION on purpose, not by accident.
    expect(hashValue({ rows: 500, name: "x" })).toBe(hashValue({ name: "x", rows: 500 }));
    expect(hashValue({ rows: 500, name: "x" })).toBe("f0725c7e3f305e237a18c891dcf9a2234efad69dd7ca6663bab8c6e7e7cf4eac");
  });
});

describe("digestFile / digestPath", () => {
  it("matches sha256sum, streamed, for a file larger than one chunk", async () => {
    const file = join(dir, "big.bin");
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    await writeFile(file, data);
    expect(await digestFile(file)).toBe(sha256(data));
    expect(digestFileSync(file)).toBe(sha256(data));
    expect(await digestPath(file)).toBe(sha256(data));
    expect(execFileSync("sha256sum", [file]).toString().split(" ")[0]).toBe(await digestFile(file));
  });

  it("matches sha256sum for small files read whole, empty and at the 1 MiB boundary, as for streamed ones", async () => {
    for (const size of [0, 8, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1]) {
      const file = join(dir, `sized-${size}.bin`);
      const data = Buffer.alloc(size, size % 251);
      await writeFile(file, data);
      expect(await digestFile(file), `${size} bytes`).toBe(sha256(data));
      expect(execFileSync("sha256sum", [file]).toString().split(" ")[0], `${size} bytes`).toBe(await digestFile(file));
    }
  });

  it("digests a folder by sorted relative paths and contents, whatever the creation order", async () => {
    const make = async (name: string, order: string[]) => {
      const root = join(dir, name);
      await mkdir(join(root, "sub"), { recursive: true });
      for (const f of order) await writeFile(join(root, f), `content of ${f}`);
      return root;
    };
    const a = await make("a", ["x.txt", "sub/y.txt", "sub/z.txt"]);
    const b = await make("b", ["sub/z.txt", "x.txt", "sub/y.txt"]);
    expect(await digestPath(a)).toBe(await digestPath(b));
    expect(await describePath(a)).toMatchObject({ kind: "folder", fileCount: 3, sizeBytes: 16 + 20 + 20 });

    await writeFile(join(b, "sub", "z.txt"), "changed");
    expect(await digestPath(b)).not.toBe(await digestPath(a));
  });

  it("lists a folder's entries by one stat each, as its digest walks them, reading no file", async () => {
    const root = join(dir, "listed");
    await mkdir(join(root, "sub", "empty"), { recursive: true });
    await writeFile(join(root, "x.txt"), "12345");
    await symlink("../x.txt", join(root, "sub", "to-x"));
    await symlink("missing", join(root, "broken"));
    const listing = await listFolder(root);
    const x = await stat(join(root, "x.txt"), { bigint: true });
    expect(listing).toEqual({
      "x.txt": `file 5 ${x.mtimeNs} ${x.ino} ${x.ctimeNs}`,
      // A link to a file is the file, as its digest reads it; a broken one counts by its target text.
      "sub/to-x": `file 5 ${x.mtimeNs} ${x.ino} ${x.ctimeNs}`,
      broken: "link missing",
      sub: "dir",
      "sub/empty": "dir",
    });
  });

  it("lists a file named __proto__ as any other, in an object with no prototype", async () => {
    const root = join(dir, "proto");
    await mkdir(root);
    await writeFile(join(root, "__proto__"), "x");
    const listing = await listFolder(root);
    const info = await stat(join(root, "__proto__"), { bigint: true });
    expect(Object.keys(listing)).toEqual(["__proto__"]);
    expect(Object.hasOwn(listing, "__proto__")).toBe(true);
    expect(listing["__proto__"]).toBe(`file 1 ${info.mtimeNs} ${info.ino} ${info.ctimeNs}`);
    expect(Object.getPrototypeOf(listing)).toBeNull();
  });

  it("counts renames and empty folders", async () => {
    const a = join(dir, "a");
    const b = join(dir, "b");
    await mkdir(a);
    await mkdir(b);
    await writeFile(join(a, "one.txt"), "1");
    await writeFile(join(b, "two.txt"), "1");
    expect(await digestPath(a)).not.toBe(await digestPath(b));
    const before = await digestPath(a);
    await mkdir(join(a, "empty"));
    expect(await digestPath(a)).not.toBe(before);
  });

  it("names the folders that hold no file at any depth (a store of files alone cannot give them back), the folder itself as `.`, and digests as before", async () => {
    const root = join(dir, "ds");
    await mkdir(join(root, "sub"), { recursive: true });
    await writeFile(join(root, "sub", "f0.txt"), "x");
    // The digest of a folder without empty folders, as every Cairn made it: entries made before stay valid.
    const pinned = "114d410f006cd73d02b8e7d6d618c55af13983606d3b03a3cd4338926ff72f33";
    expect(await describePath(root)).toEqual({ digest: pinned, sizeBytes: 1, fileCount: 1, kind: "folder", emptyFolders: [] });
    await mkdir(join(root, "emptydir"));
    await mkdir(join(root, "sub", "deep", "deeper"), { recursive: true });
    await mkdir(join(root, "linked"));
    await symlink("nowhere", join(root, "linked", "broken"));
    const described = await describePath(root);
    expect(described.emptyFolders).toEqual(["emptydir", "sub/deep", "sub/deep/deeper"]);
    expect(described.digest).not.toBe(pinned);

    const none = join(dir, "none");
    await mkdir(join(none, "a", "b"), { recursive: true });
    expect((await describePath(none)).emptyFolders).toEqual([".", "a", "a/b"]);
    expect((await describePath(join(root, "sub", "f0.txt"))).emptyFolders).toBeUndefined();
  });

  it("as code, leaves out what running code or a tool writes in a folder and folders that hold no file, and lists its files; as an artifact, counts every one", async () => {
    const root = join(dir, "code");
    await mkdir(join(root, "pkg"), { recursive: true });
    await writeFile(join(root, "pkg", "helpers.py"), "def f(): pass\n");
    await writeFile(join(root, "rows.csv"), "x\n1\n");
    const clean = await describePath(root, { code: true });
    const artifact = await describePath(root);
    for (const [path, content] of [["pkg/__pycache__/helpers.cpython-312.pyc", "bytecode"], [".git/HEAD", "ref"], [".DS_Store", "finder"], ["stray.pyc", "b"], ["venv/pyvenv.cfg", "home = /usr"], ["venv/lib/x.py", "x"]] as const) {
      await mkdir(join(root, path, ".."), { recursive: true });
      await writeFile(join(root, path), content);
    }
    await mkdir(join(root, "empty", "deeper"), { recursive: true });
    const written = await describePath(root, { code: true });
    expect(written.digest).toBe(clean.digest);
    expect(written).toMatchObject({ kind: "folder", fileCount: 2 });
    expect(written.emptyFolders).toBeUndefined();
    expect(Object.keys(written.files as Record<string, string>)).toEqual(["pkg/helpers.py", "rows.csv"]);
    // An artifact's folder stays exact: each of them counts.
    expect((await describePath(root)).digest).not.toBe(artifact.digest);
    // A code folder with no subfolder digests as every Cairn made it: its entries stay valid.
    const flat = join(dir, "flat");
    await mkdir(flat);
    await writeFile(join(flat, "a.txt"), "a");
    expect((await describePath(flat, { code: true })).digest).toBe(await digestPath(flat));
    // Its files are listed one by one up to FILES_RECORDED, then only counted.
    await Promise.all(Array.from({ length: FILES_RECORDED }, (_, i) => writeFile(join(flat, `${i}.txt`), String(i))));
    expect((await describePath(flat, { code: true })).files).toBe(FILES_RECORDED + 1);
  });

  it("as code, lists what its digest counts: not node_modules/, .git/ or a virtualenv, nor a folder left out by path, wherever it is and by a link too", async () => {
    const root = join(dir, "listed-code");
    await mkdir(join(root, "node_modules", "pkg"), { recursive: true });
    await mkdir(join(root, ".git"));
    await mkdir(join(root, "env"));
    await mkdir(join(root, "deep", ".state", "cache"), { recursive: true });
    await writeFile(join(root, "a.py"), "x = 1\n");
    await writeFile(join(root, "node_modules", "pkg", "index.js"), "1");
    await writeFile(join(root, ".git", "HEAD"), "ref");
    await writeFile(join(root, "env", "pyvenv.cfg"), "home = /usr");
    await writeFile(join(root, "deep", ".state", "cache", "entry.json"), "{}");
    await symlink("deep/.state", join(root, "state-link"));
    const state = join(root, "deep", ".state");
    const clean = await describePath(root, { code: true, leftOut: [state] });
    expect(Object.keys(clean.files as Record<string, string>)).toEqual(["a.py"]);
    const listing = await listFolder(root, { code: true, leftOut: [state] });
    expect(Object.keys(listing)).toEqual(["a.py"]);
    // The walk that digests it is its listing too, the same as one taken on its own.
    expect(await describeCodeFolder(root, [state])).toEqual({ description: clean, listing });
    // What a run writes in the folder left out changes neither; without it, it counts.
    await writeFile(join(state, "cache", "other.json"), "{}");
    expect(await describePath(root, { code: true, leftOut: [state] })).toEqual(clean);
    expect(await listFolder(root, { code: true, leftOut: [state] })).toEqual(listing);
    expect(Object.keys((await describePath(root, { code: true })).files as Record<string, string>)).toContain("deep/.state/cache/other.json");
    // A folder left out that does not exist (yet), or lies outside the folder, changes nothing.
    expect((await describePath(root, { code: true, leftOut: [join(dir, "elsewhere"), join(root, "later")] })).digest).toBe(
      (await describePath(root, { code: true, leftOut: [] })).digest,
    );
    // As an artifact's listing, every entry counts.
    expect(Object.keys(await listFolder(root))).toContain("node_modules/pkg/index.js");
  });

  it("follows symlinks to content and records broken or looping links by target", async () => {
    const withCopy = join(dir, "copy");
    const withLink = join(dir, "link");
    await mkdir(withCopy);
    await mkdir(withLink);
    await writeFile(join(dir, "data.csv"), "a,b\n1,2\n");
    await writeFile(join(withCopy, "data.csv"), "a,b\n1,2\n");
    await symlink(join(dir, "data.csv"), join(withLink, "data.csv"));
    expect(await digestPath(withLink)).toBe(await digestPath(withCopy));

    await symlink("..", join(withLink, "loop"));
    await symlink("nowhere", join(withLink, "broken"));
    const first = await digestPath(withLink);
    expect(await digestPath(withLink)).toBe(first);
  });
});
