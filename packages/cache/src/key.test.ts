import { scryptSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, runTs } from "../test/_child.ts";
import {
  CACHE_SCHEMA_VERSION,
  CacheOptionError,
  CacheValueError,
  computeCacheKey,
  type CacheKeyIngredients,
  type RecordedIngredients,
  diffIngredients,
  digestPath,
  hashValue,
  keyOfIngredients,
  packageEntry,
  privateDigestAsync,
  replaceArtifacts,
  sha256,
} from "./index.ts";

const base: CacheKeyIngredients = {
  taskName: "train",
  taskVersion: "1",
  code: "async ({ rows }) => fit(rows)",
  inputs: { rows: 500, config: { lr: 0.1, layers: [64, 32] }, data: { $artifact: "ab".repeat(32) } },
  env: { API_TOKEN: "s3cr3t-token", REGION: "eu" },
};
const keyOf = (changes: Partial<CacheKeyIngredients>) => computeCacheKey({ ...base, ...changes }).key;

describe("computeCacheKey", () => {
  it("keeps an input, param or variable named __proto__ (JSON.parse makes it an own key) in the key and its ingredients", () => {
    const proto = (value: unknown) => JSON.parse(`{"__proto__":${JSON.stringify(value)}}`) as Record<string, never>;
    for (const [field, a, b] of [["inputs", proto(1), proto(2)], ["params", proto(1), proto(2)], ["env", proto("x"), proto("y")]] as const) {
      const one = computeCacheKey({ ...base, [field]: a });
      expect(one.key).not.toBe(computeCacheKey({ ...base, [field]: b }).key);
      expect(one.key).not.toBe(computeCacheKey({ ...base, [field]: {} }).key);
      expect(Object.keys(one.ingredients[field]!)).toEqual(["__proto__"]);
    }
  });

  it("is stable across key orders and records the schema version", () => {
    const reordered: CacheKeyIngredients = {
      env: { REGION: "eu", API_TOKEN: "s3cr3t-token" },
      inputs: { data: { $artifact: "ab".repeat(32) }, config: { layers: [64, 32], lr: 0.1 }, rows: 500 },
      code: base.code,
      taskVersion: "1",
      taskName: "train",
    };
    const { key, ingredients } = computeCacheKey(base);
    expect(computeCacheKey(reordered).key).toBe(key);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(ingredients.schemaVersion).toBe(CACHE_SCHEMA_VERSION);
    expect(keyOfIngredients(ingredients)).toBe(key);
  });

  it("keeps the key ordinary inputs always had (only -0 got a text of its own)", () => {
    // If this changes, every entry in every cache misses: bump CACHE_SCHEMA_VERSION on purpose, not by accident.
    const inputs = { ...base.inputs, zero: 0, neg: -1.5 };
    expect(computeCacheKey({ ...base, inputs }).key).toBe("3eafbd99ff8099b78f2fd38efade6ed21bd2b461a655b65b7fd57b491ecc053d");
    expect(keyOf({ inputs: { x: -0 } })).not.toBe(keyOf({ inputs: { x: 0 } }));
  });

  it("is the same key in another process", async () => {
    const reordered = { ...base, inputs: { config: { layers: [64, 32], lr: 0.1 }, data: base.inputs.data, rows: 500 } };
    const child = JSON.parse(await runTs(fixture("compute-key.ts"), [JSON.stringify(reordered)]));
    expect(child.key).toBe(computeCacheKey(base).key);
  });

  it("changes with every ingredient", () => {
    const key = computeCacheKey(base).key;
    const variants = [
      keyOf({ schemaVersion: CACHE_SCHEMA_VERSION + 1 }),
      keyOf({ taskName: "train2" }),
      keyOf({ taskVersion: "2" }),
      keyOf({ taskVersion: undefined }),
      keyOf({ code: `${base.code} ` }),
      keyOf({ inputs: { ...base.inputs, rows: 1000 } }),
      keyOf({ inputs: { ...base.inputs, config: { lr: 0.1, layers: [32, 64] } } }),
      keyOf({ inputs: { ...base.inputs, extra: undefined } }),
      keyOf({ env: { ...base.env, API_TOKEN: "other" } }),
      keyOf({ env: { ...base.env, API_TOKEN: undefined } }),
      keyOf({ env: { REGION: "eu" } }),
    ];
    expect(new Set([key, ...variants]).size).toBe(variants.length + 1);
  });

  it("keeps env values out of the ingredients, even where two variables share a value", () => {
    const { ingredients } = computeCacheKey({ ...base, env: { A: "same", B: "same", C: undefined } });
    const text = JSON.stringify(ingredients);
    expect(text).not.toContain("same");
    expect(ingredients.env.A).not.toBe(ingredients.env.B);
    expect(ingredients.env.C).toBeNull();
    expect(JSON.stringify(computeCacheKey(base).ingredients)).not.toContain("s3cr3t-token");
  });

  it("records a variable by scrypt salted with its name, so a short value cannot be found by sha256 guesses", async () => {
    const { ingredients } = computeCacheKey({ ...base, env: { PIN: "4711" } });
    // The recipe is part of every key: pinned, so that it changes only on purpose.
    expect(ingredients.env.PIN).toBe(scryptSync("4711", "cairn-private-v1\0env\0PIN", 32, { N: 4096, r: 8, p: 1 }).toString("hex"));
    const guesses = Array.from({ length: 10_000 }, (_, n) => String(n).padStart(4, "0"));
    const forms = (pin: string) => [sha256(pin), sha256(`cairn-env-v1\0PIN\0${pin}`), hashValue(pin)];
    expect(guesses.filter((pin) => forms(pin).includes(ingredients.env.PIN!))).toEqual([]);
    // Made off the event loop (as a run does before it makes a key), it is the same digest.
    expect(await Promise.all([privateDigestAsync("4712", "env\0PIN"), privateDigestAsync("4712", "env\0PIN")])).toEqual([
      computeCacheKey({ ...base, env: { PIN: "4712" } }).ingredients.env.PIN,
      computeCacheKey({ ...base, env: { PIN: "4712" } }).ingredients.env.PIN,
    ]);
  });

  it("records small inputs by value and large ones by hash only", () => {
    const big = Array.from({ length: 1000 }, (_, i) => ({ id: i }));
    const { ingredients } = computeCacheKey({ ...base, inputs: { rows: 500, big, n: 10n } });
    expect(ingredients.inputs.rows).toEqual({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), value: 500 });
    expect(ingredients.inputs.big).toEqual({ sha256: expect.any(String) });
    expect(ingredients.inputs.n).toEqual({ sha256: expect.any(String) });
  });

  it("records an input by value exactly when its JSON is at most 1,024 bytes, and does not write a large one's JSON whole to find out", () => {
    const recorded = (value: unknown) => computeCacheKey({ ...base, inputs: { v: value } }).ingredients.inputs.v!;
    const text = (bytes: number) => "a".repeat(bytes - 2); // a JSON string of `bytes` bytes
    expect(recorded(text(1024)).value).toBe(text(1024));
    expect(recorded(text(1025))).not.toHaveProperty("value");
    // Bytes, not characters: 341 three-byte characters are 1,025 bytes of JSON, 340 are 1,022.
    expect(recorded("€".repeat(340)).value).toBe("€".repeat(340));
    expect(recorded("€".repeat(341))).not.toHaveProperty("value");
    // What JSON leaves out or writes its own way is not counted against it.
    const sparse = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, undefined]));
    expect(recorded(sparse).value).toEqual({});
    expect(recorded([new Date(0)]).value).toEqual(["1970-01-01T00:00:00.000Z"]);
    expect(recorded({ a: [1, { b: "x".repeat(1000) }] }).value).toEqual({ a: [1, { b: "x".repeat(1000) }] });
    expect(recorded({ a: [1, { b: "x".repeat(1020) }] })).not.toHaveProperty("value");
    // A large value is hashed (every item read once), never also stringified whole.
    let reads = 0;
    const rows = Array.from({ length: 20_000 }, (_, i) => Object.defineProperty({}, "id", { get: () => (reads++, i), enumerable: true }));
    const big = recorded(rows);
    expect(big).not.toHaveProperty("value");
    expect(big.sha256).toBe(hashValue(rows.map((_, i) => ({ id: i }))));
    expect(reads).toBeLessThan(1.5 * rows.length);
  });

  it("hashes a value handed to many tasks once, given where to remember it, and keys it as without", () => {
    let reads = 0;
    const rows = Array.from({ length: 5000 }, (_, i) => Object.defineProperty({}, "id", { get: () => (reads++, i), enumerable: true }));
    const alone = computeCacheKey({ ...base, inputs: { rows, k: 1 } });
    const aloneSecond = computeCacheKey({ ...base, inputs: { rows, k: 2 } });
    const digests = new WeakMap<object, string>();
    reads = 0;
    const first = computeCacheKey({ ...base, inputs: { rows, k: 1 } }, { digests });
    const afterFirst = reads;
    const second = computeCacheKey({ ...base, inputs: { rows, k: 2 } }, { digests });
    expect(first).toEqual(alone);
    expect(second.ingredients.inputs.rows).toEqual(alone.ingredients.inputs.rows);
    expect(second).toEqual(aloneSecond);
    // The second consumer read none of the rows (the first read each once, to hash them).
    expect(afterFirst).toBeGreaterThanOrEqual(rows.length);
    expect(reads).toBe(afterFirst);
  });

  it("rejects missing parts where they enter", () => {
    expect(() => computeCacheKey({ ...base, taskName: "" })).toThrow(CacheOptionError);
    expect(() => computeCacheKey({ ...base, code: undefined as unknown as string })).toThrow(/Expected `code` to be a string/);
    expect(() => computeCacheKey({ ...base, inputs: [] as unknown as Record<string, unknown> })).toThrow(/`inputs`/);
  });
});

describe("replaceArtifacts", () => {
  class Artifact {
    constructor(readonly path: string) {}
  }
  const isArtifact = (v: unknown): v is Artifact => v instanceof Artifact;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-key-"));
    await mkdir(join(dir, "run-1"));
    await mkdir(join(dir, "run-2"));
    await writeFile(join(dir, "run-1", "data.csv"), "a,b\n1,2\n");
    await writeFile(join(dir, "run-2", "renamed.csv"), "a,b\n1,2\n");
    await writeFile(join(dir, "run-2", "other.csv"), "a,b\n1,3\n");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const keyWith = async (path: string) => {
    const inputs = (await replaceArtifacts({ data: new Artifact(path), nested: [{ also: new Artifact(path) }], rows: 5 }, isArtifact, (a) =>
      digestPath(a.path),
    )) as Record<string, unknown>;
    return { inputs, key: computeCacheKey({ taskName: "t", code: "c", inputs }).key };
  };

  it("gives the same key for the same content under another path, and another key for other content", async () => {
    const one = await keyWith(join(dir, "run-1", "data.csv"));
    const moved = await keyWith(join(dir, "run-2", "renamed.csv"));
    const changed = await keyWith(join(dir, "run-2", "other.csv"));
    expect(one.inputs.data).toEqual({ $artifact: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(one.inputs.nested).toEqual([{ also: one.inputs.data }]);
    expect(moved.key).toBe(one.key);
    expect(changed.key).not.toBe(one.key);
  });

  it("keeps an own `__proto__` key (JSON.parse makes one) as an own key, so that it counts in the key", async () => {
    const keyOf = async (json: string) => {
      const inputs = { cfg: await replaceArtifacts(JSON.parse(json), isArtifact, () => "d") };
      return { cfg: inputs.cfg as object, key: computeCacheKey({ taskName: "t", code: "c", inputs }).key };
    };
    const admin = await keyOf('{"__proto__":{"admin":true},"k":2}');
    expect(Object.getPrototypeOf(admin.cfg)).toBe(Object.prototype);
    expect(Object.keys(admin.cfg)).toEqual(["__proto__", "k"]);
    expect(admin.cfg).not.toHaveProperty("admin");
    const others = await Promise.all(['{"k":2}', '{"__proto__":{"admin":false},"k":2}', '{"__proto__":{},"k":2}'].map(keyOf));
    expect(new Set([admin, ...others].map((o) => o.key)).size).toBe(4);
  });

  it("hands back a value that holds no artifact as it is, and copies only the way to those it replaces", async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ id: i }));
    const inputs = { rows, n: 5, cfg: { lr: 0.1 } };
    expect(await replaceArtifacts(inputs, isArtifact, () => "d")).toBe(inputs);
    const mixed = { rows, files: [new Artifact("a"), { keep: 1 }] };
    const replaced = (await replaceArtifacts(mixed, isArtifact, () => "d")) as { rows: unknown; files: unknown[] };
    expect(replaced).toEqual({ rows, files: [{ $artifact: "d" }, { keep: 1 }] });
    expect(replaced.rows).toBe(rows);
    expect(replaced.files[1]).toBe(mixed.files[1]);
    expect(mixed.files[0]).toBeInstanceOf(Artifact);
  });

  it("leaves other values alone and refuses cycles", async () => {
    const date = new Date(0);
    expect(await replaceArtifacts({ a: [1, "x", null], date }, isArtifact, () => "d")).toEqual({ a: [1, "x", null], date });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(replaceArtifacts(cyclic, isArtifact, () => "d")).rejects.toBeInstanceOf(CacheValueError);
  });
});

describe("diffIngredients", () => {
  const recorded = (changes: Partial<CacheKeyIngredients>) => computeCacheKey({ ...base, ...changes }).ingredients;

  it("names an input, a key in one or a variable called toString or constructor as added or removed, read back from JSON as an entry is", () => {
    const stored = (changes: Partial<CacheKeyIngredients>) => JSON.parse(JSON.stringify(recorded(changes))) as RecordedIngredients;
    const messages = (a: RecordedIngredients, b: RecordedIngredients) => diffIngredients(a, b).map((c) => c.message);
    expect(messages(stored({}), stored({ inputs: { ...base.inputs, toString: 1 } }))).toEqual(["input `toString` was added"]);
    expect(messages(stored({ inputs: { ...base.inputs, constructor: 1 } }), stored({}))).toEqual(["input `constructor` was removed"]);
    expect(messages(stored({}), stored({ env: { ...base.env, constructor: "x" } }))).toEqual(["environment variable `constructor` is newly declared"]);
    const paths = diffIngredients(stored({}), stored({ inputs: { ...base.inputs, config: { lr: 0.1, layers: [64, 32], valueOf: 2 } } })).map((c) => c.path);
    expect(paths).toEqual(["inputs.config.valueOf"]);
  });

  it("says an earlier Cairn's entry of the same code as made by that Cairn, not as changed code, and names a part given in words as it is", () => {
    const notebook = (code: string, options: Record<string, string>, formerly?: string) =>
      recorded({
        code,
        codeParts: {
          own: code,
          what: "notebook `fit.ipynb`",
          byOption: { content: "sha256:cells", options },
          ...(formerly !== undefined ? { formerly: { own: formerly, why: "the earlier entry was made by an older Cairn" } } : {}),
        },
      });
    const now = notebook("sha256:cells;kernel=python3;parameters=after code cell 1", { "the kernel": "kernel=python3", "the cell tagged `parameters`": "parameters=after code cell 1" }, "sha256:cells");
    const older = recorded({ code: "sha256:cells", codeParts: { own: "sha256:cells" } });
    expect(diffIngredients(older, now).map((c) => c.message)).toEqual(["the earlier entry was made by an older Cairn"]);
    // Another code than the older Cairn's: a change of the notebook, as before.
    expect(diffIngredients(recorded({ code: "sha256:other", codeParts: { own: "sha256:other" } }), now).map((c) => c.message)).toEqual([
      "notebook `fit.ipynb` changed (its code cells, its kernel, its cell tagged `parameters`, or its options: python, html, cwd, env)",
    ]);
    const moved = notebook("sha256:cells;kernel=python3;parameters=at the top", { "the kernel": "kernel=python3", "the cell tagged `parameters`": "parameters=at the top", cwd: "cwd=a" });
    expect(diffIngredients(now, moved).map((c) => c.message)).toEqual(["option `cwd` (added) and the cell tagged `parameters` of notebook `fit.ipynb` changed"]);
  });

  it("says which input changed, from what to what", () => {
    const changes = diffIngredients(recorded({}), recorded({ inputs: { ...base.inputs, rows: 1000 } }));
    expect(changes).toEqual([{ path: "inputs.rows", before: 500, after: 1000, message: "input `rows` changed from 500 to 1000" }]);
  });

  it("names an input that counts by its file's content as the file: its content changed, it names another file, or it counts by content where the earlier entry had its path only", () => {
    const file = (digest: string, path = "/abs/iris.csv") => recorded({ inputs: { data: { $file: digest, path } } });
    const messages = (a: RecordedIngredients, b: RecordedIngredients) => diffIngredients(a, b).map((c) => c.message);
    expect(messages(file("a"), file("b"))).toEqual(["file `data` (/abs/iris.csv) changed"]);
    expect(messages(file("a"), file("a", "/abs/other.csv"))).toEqual(['input `data` changed from "/abs/iris.csv" to "/abs/other.csv"']);
    expect(messages(recorded({ inputs: { data: "/abs/iris.csv" } }), file("a"))).toEqual(["file `data` (/abs/iris.csv) now counts by its content (the earlier entry counted its path only)"]);
  });

  it("says an input changed where its recorded JSON shows none (a class instance whose state is private records as {})", () => {
    const a = recorded({});
    const as = (sha256: string) => ({ ...a, inputs: { ...a.inputs, price: { sha256, value: {} } } });
    expect(diffIngredients(as("a".repeat(64)), as("b".repeat(64))).map((c) => c.message)).toEqual([
      "input `price` changed in what its recorded JSON does not show (a value that is not JSON data, such as a class instance or a Set a schema made; sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb)",
    ]);
  });

  it("goes into arrays of one length item by item, and counts the items of arrays of another", () => {
    const rows = (m: number, n = 3) => Array.from({ length: n }, (_, i) => ({ trial: `fit[${i}]`, params: { lr: 0.1 * i, depth: 3 }, metric: i === 2 ? m : i }));
    const changed = diffIngredients(recorded({ inputs: { rows: rows(0.5) } }), recorded({ inputs: { rows: rows(0.7) } }));
    expect(changed.map((c) => c.message)).toEqual(["input `rows[2].metric` changed from 0.5 to 0.7"]);
    const longer = diffIngredients(recorded({ inputs: { rows: rows(0.5) } }), recorded({ inputs: { rows: rows(0.5, 4) } }));
    expect(longer.map((c) => c.message)[0]).toMatch(/^input `rows` changed from 3 items to 4: /);
  });

  it("goes into objects, and names code, version, env, artifact, added and removed inputs", () => {
    const after = recorded({
      code: "changed",
      taskVersion: "2",
      inputs: { config: { lr: 0.2, layers: [64, 32] }, data: { $artifact: "cd".repeat(32) }, seed: 7 },
      env: { API_TOKEN: "rotated", REGION: "eu" },
    });
    const messages = diffIngredients(recorded({}), after).map((c) => `${c.path}: ${c.message}`);
    expect(messages).toEqual([
      "taskVersion: task version changed from \"1\" to \"2\"",
      "code: code changed",
      "inputs.config.lr: input `config.lr` changed from 0.1 to 0.2",
      "inputs.data: input `data` is an artifact whose content changed",
      "inputs.rows: input `rows` was removed",
      "inputs.seed: input `seed` was added",
      "env.API_TOKEN: environment variable `API_TOKEN` changed value",
    ]);
    expect(JSON.stringify(diffIngredients(recorded({}), after))).not.toContain("rotated");
  });

  it("names the declared code file that changed, was added or was removed", () => {
    const files = (f: Record<string, string>) => recorded({ codeFiles: f });
    const before = files({ "./lib/a.ts": "a1", "./lib/b.ts": "b1" });
    expect(diffIngredients(before, files({ "./lib/a.ts": "a2", "./lib/b.ts": "b1" })).map((c) => c.message)).toEqual(["code file `./lib/a.ts` changed"]);
    expect(diffIngredients(before, files({ "./lib/a.ts": "a1", "./lib/c.ts": "c1" })).map((c) => c.message)).toEqual([
      "code file `./lib/b.ts` was removed",
      "code file `./lib/c.ts` was added",
    ]);
    // Code files enter the key; without any, the key is what it was without the field.
    expect(keyOf({ codeFiles: { "./lib/a.ts": "a1" } })).not.toBe(keyOf({ codeFiles: { "./lib/a.ts": "a2" } }));
    expect(keyOf({ codeFiles: {} })).toBe(keyOf({}));
  });

  it("names a registry package the task's code imports by its versions: changed, newly imported, no longer imported", () => {
    const files = (f: Record<string, string>) => recorded({ codeFiles: f });
    const before = files({ [packageEntry("minidep")]: "1.0.0", [packageEntry("@scope/units")]: "3.0.0" });
    expect(diffIngredients(before, files({ [packageEntry("minidep")]: "2.0.0", [packageEntry("@scope/units")]: "3.0.0" })).map((c) => c.message)).toEqual(["package `minidep` 1.0.0 → 2.0.0"]);
    expect(diffIngredients(before, files({ [packageEntry("minidep")]: "1.0.0", [packageEntry("zod")]: "4.0.1" })).map((c) => c.message)).toEqual([
      "package `@scope/units` 3.0.0 is no longer imported",
      "package `zod` 4.0.1 is now imported",
    ]);
  });

  it("names an http task's request headers, which enter as code files, by name and never by value", () => {
    const files = (f: Record<string, string>) => recorded({ codeFiles: f });
    const before = files({ "http header x-api-version": "d1", "http headers()": "f1" });
    expect(diffIngredients(before, files({ "http header x-api-version": "d2", "http header accept": "a1", "http headers()": "f2" })).map((c) => c.message)).toEqual([
      "request header `accept` was added",
      "request header `x-api-version` changed",
      "the function that makes the request headers changed",
    ]);
  });

  it("keys and names the params a task reads; a task that reads none keeps the key it had", () => {
    const params = (p: Record<string, unknown>) => recorded({ params: p });
    expect(keyOf({ params: {} })).toBe(keyOf({}));
    expect(keyOf({ params: { n: 1 } })).not.toBe(keyOf({ params: { n: 2 } }));
    expect(keyOf({ params: { n: 1 } })).not.toBe(keyOf({ inputs: { ...base.inputs, n: 1 } })); // a param is not an input
    expect(diffIngredients(params({ n: 1, cfg: { lr: 0.1 } }), params({ n: 2, cfg: { lr: 0.2 } })).map((c) => `${c.path}: ${c.message}`)).toEqual([
      "params.cfg.lr: param `cfg.lr` changed from 0.1 to 0.2",
      "params.n: param `n` changed from 1 to 2",
    ]);
    expect(diffIngredients(recorded({}), params({ n: 1 })).map((c) => c.message)).toEqual(["param `n` was added"]);
  });

  it("names a changed cache key or resolved code apart from the code, without changing any key", () => {
    const parts = (cacheKey?: string, resolved?: string, own = "fn") =>
      recorded({ code: `function\0${own}${cacheKey !== undefined ? `\0cache-key:${cacheKey}` : ""}${resolved !== undefined ? `\0resolved:${resolved}` : ""}`, codeParts: { own, ...(cacheKey !== undefined ? { cacheKey } : {}), ...(resolved !== undefined ? { resolved } : {}) } });
    // The key hashes the code whole, as before the parts were recorded.
    const { codeParts: _, ...without } = parts("v1");
    expect(keyOfIngredients(parts("v1"))).toBe(keyOfIngredients(without));
    expect(diffIngredients(parts("v1"), parts("v2")).map((c) => c.message)).toEqual(['cache key (`.cache({ key })`) changed from "v1" to "v2"']);
    expect(diffIngredients(parts(undefined, "models:/churn/3"), parts(undefined, "models:/churn/4")).map((c) => c.message)).toEqual([
      'what the task\'s code resolves to (a model alias now naming another version, say) changed from "models:/churn/3" to "models:/churn/4"',
    ]);
    expect(diffIngredients(parts("v1", undefined, "fn"), parts("v2", undefined, "fn2")).map((c) => c.path)).toEqual(["code", "cacheKey"]);
    expect(diffIngredients(parts(undefined), parts("v1")).map((c) => c.message)).toEqual(['cache key (`.cache({ key })`) was added: "v1"']);
    // The task's own words for what its code resolved to, from the two recorded values.
    const moved = (before: string, after: string) => `alias moved from ${before.split("/").at(-1)} to ${after.split("/").at(-1)}`;
    expect(diffIngredients(parts(undefined, "models:/churn/3"), parts(undefined, "models:/churn/4"), { resolvedChange: moved }).map((c) => c.message)).toEqual(["alias moved from 3 to 4"]);
    expect(diffIngredients(parts(undefined, "a"), parts(undefined, "b"), { resolvedChange: () => undefined }).map((c) => c.message)).toEqual([
      'what the task\'s code resolves to (a model alias now naming another version, say) changed from "a" to "b"',
    ]);
    // An entry made before the parts were recorded: only "code changed" can be said.
    expect(diffIngredients(without, parts("v2")).map((c) => c.message)).toEqual(["code changed"]);
  });

  it("says a path input that differs only in where the project is checked out is a checkout path, and how to keep it out of the key", () => {
    const path = (file: string) => recorded({ inputs: { file } });
    const said = (a: string, b: string, checkouts: string[]) => diffIngredients(path(a), path(b), { checkouts }).map((c) => c.message);
    const [moved] = said("/home/alice/proj/data/customers.csv", "/builds/ci/proj/data/customers.csv", ["/builds/ci/proj"]);
    expect(moved).toBe(
      "input `file` changed only in the folder before `data/customers.csv`, where the project is checked out (now /builds/ci/proj): each checkout at another place misses. Pass a path relative to the project instead (`data/customers.csv`, from the project's root, resolved in the task). It changed from \"/home/alice/proj/data/customers.csv\" to \"/builds/ci/proj/data/customers.csv\"",
    );
    // Another file in the same checkout, or a path outside it, is an ordinary change.
    expect(said("/builds/ci/proj/data/a.csv", "/builds/ci/proj/data/b.csv", ["/builds/ci/proj"])[0]).not.toContain("checked out");
    expect(said("/data/2024/raw.csv", "/data/2025/raw.csv", ["/builds/ci/proj"])[0]).not.toContain("checked out");
  });

  it("names the files of a folder digest that changed (an MLflow project's), the first few of many, without changing any key", () => {
    const project = (files: Record<string, string> | number, own = `mlflow-project:${JSON.stringify(files)}`) =>
      recorded({ code: own, codeParts: { own, contents: { noun: "project file", files } } });
    const v1 = { MLproject: "m1", "train.py": "t1", "evaluate.py": "e1" };
    const { codeParts: _, ...without } = project(v1);
    expect(keyOfIngredients(project(v1))).toBe(keyOfIngredients(without));
    const said = (a: ReturnType<typeof project>, b: ReturnType<typeof project>) => diffIngredients(a, b).map((c) => `${c.path}: ${c.message}`);
    expect(said(project(v1), project({ ...v1, "train.py": "t2" }))).toEqual(["code: project file `train.py` changed"]);
    expect(said(project(v1), project({ ...v1, "common.py": "c1" }))).toEqual(["code: project file `common.py` was added"]);
    const many = { MLproject: "m2", "train.py": "t2", "common.py": "c1", "d.py": "d1", "e.py": "e1" };
    expect(said(project(v1), project(many))).toEqual(["code: 6 project files changed: `MLproject`, `common.py` (added), `d.py` (added) and 3 more"]);
    // The same files, other options (an entry point, a Python): no file is named.
    expect(said(project(v1), project(v1, "other options"))).toEqual(["code: code changed"]);
    // Too many files to record one by one: only their count was.
    expect(said(project(900), project(901))).toEqual(["code: project files changed (901 files: too many to record which)"]);
    // A file an older Cairn counted and this one leaves out (`.DS_Store`) is no longer counted, not removed.
    const withDsStore = { ...v1, ".DS_Store": "ds", "sub/.DS_Store": "ds2" };
    expect(said(project(withDsStore), project(v1))).toEqual([
      "code: `.DS_Store`, `sub/.DS_Store` are no longer counted (Cairn now leaves them out of a project's digest; this misses once)",
    ]);
    expect(said(project({ ...v1, ".DS_Store": "ds" }), project({ ...v1, "train.py": "t2" }))).toEqual([
      "code: project file `train.py` changed; `.DS_Store` is no longer counted (Cairn now leaves it out of a project's digest; this misses once)",
    ]);
  });

  it("names the files of a declared code folder that changed, without changing any key, and says an entry made before folders were recorded may differ by the digest's rule alone", () => {
    const withFolder = (files: Record<string, string> | number, digest = `folder:${JSON.stringify(files)}`) =>
      recorded({ codeFiles: { "data/extra": digest, "lib.py": "l1" }, codeFolders: { "data/extra": files } });
    const v1 = { "a.csv": "a1", "b.csv": "b1" };
    const { codeFolders: _, ...without } = withFolder(v1);
    expect(keyOfIngredients(withFolder(v1))).toBe(keyOfIngredients(without));
    // Read back from JSON, as an entry is.
    const said = (a: RecordedIngredients, b: RecordedIngredients) => diffIngredients(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b))).map((c) => `${c.path}: ${c.message}`);
    expect(said(withFolder(v1), withFolder({ ...v1, "b.csv": "b2" }))).toEqual(["codeFiles.data/extra: file `b.csv` of code folder `data/extra` changed"]);
    expect(said(withFolder(v1), withFolder({ "a.csv": "a2", "c.csv": "c1" }))).toEqual(["codeFiles.data/extra: 3 files of code folder `data/extra` changed: `a.csv`, `b.csv` (removed), `c.csv` (added)"]);
    expect(said(withFolder(v1), withFolder({ ...v1, "c.csv": "c", "d.csv": "d", "e.csv": "e" }))).toEqual([
      "codeFiles.data/extra: 3 files of code folder `data/extra` changed: `c.csv` (added), `d.csv` (added), `e.csv` (added)",
    ]);
    expect(said(withFolder(900), withFolder(901))).toEqual(["codeFiles.data/extra: code folder `data/extra` changed (901 files: too many to record which)"]);
    // An entry of a Cairn that recorded no folder's files counted `__pycache__/` and empty folders in its digest.
    const older = recorded({ codeFiles: { "data/extra": "digest with __pycache__", "lib.py": "l1" } });
    expect(said(older, withFolder(v1))[0]).toMatch(/^codeFiles\.data\/extra: code folder `data\/extra` changed, or only the rule of its digest did: .*`__pycache__\/`.*\(this misses once\)$/);
    // A code file that is no folder is said as before.
    expect(said(withFolder(v1), recorded({ codeFiles: { "data/extra": "folder:x", "lib.py": "l2" }, codeFolders: { "data/extra": { ...v1, "b.csv": "b2" } } }))).toEqual([
      "codeFiles.data/extra: file `b.csv` of code folder `data/extra` changed",
      "codeFiles.lib.py: code file `lib.py` changed",
    ]);
  });

  it("names what changed in a Python task's environment: its interpreter, then the first few packages and how many more", () => {
    const python = (interpreter: string, packages: Record<string, string>) => recorded({ environment: { noun: "Python environment", interpreter, packages } });
    const said = (a: RecordedIngredients, b: RecordedIngredients) => diffIngredients(a, b).map((c) => `${c.path}: ${c.message}`);
    const v1 = python("cpython 3.11.7", { numpy: "1.26.0", "scikit-learn": "1.3.2" });
    expect(said(v1, python("cpython 3.11.7", { numpy: "1.26.0", "scikit-learn": "1.5.0" }))).toEqual(["environment: Python environment changed: scikit-learn 1.3.2 → 1.5.0"]);
    expect(said(v1, python("cpython 3.12.1", { numpy: "1.26.0", "scikit-learn": "1.3.2" }))).toEqual(["environment: Python environment changed: interpreter cpython 3.11.7 → cpython 3.12.1"]);
    const many = python("cpython 3.12.1", { numpy: "2.0.0", pandas: "2.2.0", "scikit-learn": "1.5.0", scipy: "1.13.0" });
    expect(said(v1, many)).toEqual(["environment: Python environment changed: interpreter cpython 3.11.7 → cpython 3.12.1, numpy 1.26.0 → 2.0.0, pandas 2.2.0 added and 2 more"]);
    expect(said(v1, python("python: not found (/opt/venv/bin/python)", {}))).toEqual([
      "environment: Python environment changed: interpreter cpython 3.11.7 → python: not found (/opt/venv/bin/python), numpy 1.26.0 removed, scikit-learn 1.3.2 removed",
    ]);
    // An entry made before environments were recorded: said as such, not as a change of code.
    expect(said(recorded({}), v1)).toEqual(["environment: the Python environment now counts in the key (cpython 3.11.7, 2 packages); the earlier entry was made without it"]);
    // In the key by content: its words and the order packages were listed in do not count; a task without one keeps its key.
    const key = (ingredients: RecordedIngredients) => keyOfIngredients(ingredients);
    expect(key(python("cpython 3.11.7", { "scikit-learn": "1.3.2", numpy: "1.26.0" }))).toBe(key(v1));
    expect(key({ ...v1, environment: { ...v1.environment!, noun: "Python" } })).toBe(key(v1));
    expect(key(python("cpython 3.11.7", { numpy: "1.26.0", "scikit-learn": "1.5.0" }))).not.toBe(key(v1));
    expect(key(recorded({}))).toBe(computeCacheKey(base).key);
    expect(recorded({})).not.toHaveProperty("environment");
  });

  it("an entry keeps a Python environment's package list up to 500 packages, else only its digest and count; the key holds the whole list's digest either way", () => {
    const packagesOf = (n: number, last = "1.0") => Object.fromEntries(Array.from({ length: n }, (_, i) => [`pkg-${String(i).padStart(4, "0")}`, i === n - 1 ? last : "1.0"]));
    const python = (packages: Record<string, string>) => recorded({ environment: { noun: "Python environment", interpreter: "cpython 3.11.7", packages } });
    expect(python(packagesOf(500)).environment!.packages).toEqual(packagesOf(500));
    const big = python(packagesOf(3000));
    expect(big.environment!.packages).toBe(3000);
    // 3,000 packages made each entry ~97 KB: now its record stays small.
    expect(JSON.stringify(big).length).toBeLessThan(2000);
    const upgraded = python(packagesOf(3000, "2.0"));
    expect(keyOfIngredients(upgraded)).not.toBe(keyOfIngredients(big));
    expect(diffIngredients(big, upgraded).map((c) => `${c.path}: ${c.message}`)).toEqual(["environment: Python environment changed: packages changed (3000 packages; too many to name)"]);
    expect(diffIngredients(big, python(packagesOf(3000)))).toEqual([]);
  });

  it("shows long values where they differ, so that before and after never read the same", () => {
    const file = (v: number) => recorded({ inputs: { file: `/mnt/datasets/customers/exports/2024/region-eu/monthly/customers_v${v}.csv` } });
    expect(diffIngredients(file(1), file(2)).map((c) => c.message)).toEqual([
      'input `file` changed from .../customers_v1.csv" to .../customers_v2.csv" (they differ from character 67 on)',
    ]);
    // Differing near the start: the part around it, the common end dropped.
    const sql = (t: string) => recorded({ inputs: { q: `select * from ${t} where region = 'eu' and month between 1 and 12 order by id` } });
    expect(diffIngredients(sql("a"), sql("b")).map((c) => c.message)).toEqual([
      "input `q` changed from ...lect * from a where regio... to ...lect * from b where regio... (they differ from character 15 on)",
    ]);
    // Short values stay whole.
    expect(diffIngredients(recorded({ inputs: { n: "abc" } }), recorded({ inputs: { n: "abd" } })).map((c) => c.message)).toEqual(['input `n` changed from "abc" to "abd"']);
  });

  it("is empty for equal ingredients and reports large inputs by hash", () => {
    expect(diffIngredients(recorded({}), recorded({}))).toEqual([]);
    const big = (n: number) => ({ inputs: { rows: Array.from({ length: 500 }, (_, i) => i + n) } });
    const [change] = diffIngredients(recorded(big(0)), recorded(big(1)));
    expect(change?.message).toMatch(/^input `rows` changed \(recorded by hash only: too large to show, or it held a secret; sha256 [0-9a-f]{12} -> [0-9a-f]{12}\)$/);
  });
});
