import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Keyv } from "keyv";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fixture, lineFrom, runTs, startTs } from "../../test/_child.ts";
import { keysRead } from "../../test/keys-read.ts";
import { makeEntry } from "../../test/store-suite.ts";
import { CacheStore, currentOwner } from "../index.ts";
import { fileNameOfKey, keyOfFileName } from "./_files.ts";
import { EmbeddedKeyvStore } from "./embedded-store.ts";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "cairn-embedded-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const entriesDir = () => join(root, "cache", "entries");
/** Whether this machine lets us start a process in a PID namespace of its own (root, or user namespaces allowed). */
const canUnshare = spawnSync("unshare", ["-p", "-f", "--mount-proc", "true"]).status === 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("file names of keys", () => {
  it("keep [A-Za-z0-9_-], percent-encode every other UTF-8 byte, and decode back", () => {
    expect(fileNameOfKey("cairn:ab12", ".json")).toBe("cairn%3Aab12.json");
    expect(fileNameOfKey("a.b/é ü", "")).toBe("a%2Eb%2F%C3%A9%20%C3%BC");
    for (const key of ["cairn:ab12", "a.b/é ü", "..", ".hidden", "x%41y", "日本"]) {
      const name = fileNameOfKey(key, ".json");
      expect(name.startsWith(".")).toBe(false);
      expect(keyOfFileName(name, ".json")).toBe(key);
    }
  });
});

describe("EmbeddedKeyvStore (keyv adapter)", () => {
  it("parses each entry in the step that reads it: lookups started at once never hold all their entries' texts together", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    const entries = Array.from({ length: 20 }, () => makeEntry());
    for (const entry of entries) await store.set(entry);
    const parse = vi.spyOn(JSON, "parse");
    try {
      // A run's lookups of thousands of hits start so, each reading its file before any awaits.
      const lookups = entries.map((entry) => store.lookup(entry.key));
      // Every text was parsed as it was read, none left waiting in a promise for its parse.
      const parsedBeforeAnyAwait = parse.mock.calls.length;
      const found = await Promise.all(lookups);
      expect(found.map((f) => f.entry?.sourceRunId)).toEqual(entries.map((e) => e.sourceRunId));
      expect(parsedBeforeAnyAwait).toBe(entries.length);
    } finally {
      parse.mockRestore();
    }
  });

  it("keeps one readable file per key and leaves no temp files", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    const entry = makeEntry();
    await store.set(entry);
    await store.set({ ...entry, sourceRunId: "again" });
    const names = await readdir(entriesDir());
    expect(names).toEqual([fileNameOfKey(`cairn:${entry.key}`, ".json")]);
    expect(names[0]).toBe(`cairn%3A${entry.key}.json`);
    const text = await readFile(join(entriesDir(), names[0]!), "utf8");
    expect(JSON.parse(text).value.sourceRunId).toBe("again");
    expect(text).not.toContain("s3cr3t-value"); // the env value makeEntry() declares
  });

  it("works as a plain keyv store: namespaces, has, clear, iterator", async () => {
    const dir = join(root, "kv");
    const a = new Keyv({ store: new EmbeddedKeyvStore(dir), namespace: "a" });
    const b = new Keyv({ store: new EmbeddedKeyvStore(dir), namespace: "b" });
    await a.set("x", { n: 1 });
    await a.set("y:z", [1, 2]);
    await b.set("x", "other");
    expect(await a.get("x")).toEqual({ n: 1 });
    expect(await a.get("y:z")).toEqual([1, 2]);
    expect(await b.get("x")).toBe("other");
    expect(await a.has("x")).toBe(true);
    const listed: unknown[] = [];
    const iterate = a.iterator ?? a.generateIterator((a.store as EmbeddedKeyvStore).iterator.bind(a.store));
    for await (const pair of iterate(undefined)) listed.push(pair);
    expect(listed).toHaveLength(2);
    await a.clear();
    expect(await a.get("x")).toBeUndefined();
    expect(await b.get("x")).toBe("other");
  });

  it("treats a truncated or empty file as a miss and removes it", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    for (const garbage of ['{"value":{"key":"', "", "\u0000\u0000\u0000", "[1,2]", '{"value": 42}']) {
      const entry = makeEntry();
      await store.set(entry);
      const file = join(entriesDir(), fileNameOfKey(`cairn:${entry.key}`, ".json"));
      await writeFile(file, garbage);
      expect(await store.get(entry.key)).toBeUndefined();
      await expect(readFile(file)).rejects.toMatchObject({ code: "ENOENT" });
    }
  });

  it("recreates its folder when it is removed under a running store", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    await store.set(makeEntry());
    await rm(join(root, "cache"), { recursive: true });
    const entry = makeEntry();
    await store.set(entry);
    expect(await store.get(entry.key)).toBeDefined();
  });

  it("a wait deletes nothing: an entry whose short ttl runs out between two looks is left for the next lookup to report as expired", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    const entry = makeEntry();
    const lease = await store.acquireLease(entry.key, { ttlMs: 10_000, owner: "the holder" });
    if (!lease.acquired) throw new Error("expected the lease");
    const waiting = store.waitFor(entry.key, { pollMs: 20 });
    await sleep(50); // the wait has looked, and found nothing yet
    await store.set(entry, { ttlMs: 1 });
    await sleep(200); // the wait looks several times after the entry expired, the holder still holding
    await lease.release();
    expect(await waiting).toBeUndefined();
    // Before, the wait's look deleted it unsaid, and this lookup found nothing: a plain miss.
    expect(await store.lookup(entry.key)).toEqual({ expired: { at: expect.any(Number), entry: expect.objectContaining({ sourceRunId: entry.sourceRunId }) } });
  });
});

describe("a task's entries listed through the index by task", () => {
  async function fill(store: CacheStore, taskName: string, count: number, createdAt = 1_000): Promise<string[]> {
    const keys: string[] = [];
    for (let i = 0; i < count; i++) keys.push((await store.set(makeEntry(taskName, { createdAt: createdAt + i }))).key);
    return keys;
  }

  it("reads none of another task's 1,000 entries, and of its own only the newest `limit` made `before`", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    const others = new Set(await fill(store, "other-flow-task", 1000));
    const mine = await fill(store, "train", 40);
    await store.list({ taskName: "train", keep: true, indexed: true }); // marks what came before the index: nothing here
    const { result, read } = await keysRead(() => store.list({ taskName: "train", keep: true, indexed: true, before: 1_030, limit: 25 }));
    expect(read.filter((key) => others.has(key))).toEqual([]);
    expect(read.length).toBeLessThanOrEqual(32);
    // What the listing of every entry gives, filtered as a miss would.
    expect(result.map((e) => e.key)).toEqual(mine.slice(5, 30).reverse());
    const whole = (await store.list({ keep: true })).filter((e) => e.taskName === "train" && e.createdAt < 1_030).slice(0, 25);
    expect(result).toEqual(whole);
  });

  it("marks the entries made before the index once, then reads only the task's own; a deleted entry is left out, and prune sweeps its marker", async () => {
    const store = await CacheStore.fromUrl(undefined, { root });
    const others = new Set(await fill(store, "other-flow-task", 50));
    const mine = await fill(store, "train", 3);
    // As a Cairn without the index left the store.
    await rm(join(root, "cache", "index"), { recursive: true });
    const first = await keysRead(() => store.list({ taskName: "train", keep: true, indexed: true }));
    expect(first.result.map((e) => e.key)).toEqual([...mine].reverse());
    const again = await CacheStore.fromUrl(undefined, { root }); // another process: the marks are on disk
    const second = await keysRead(() => again.list({ taskName: "train", keep: true, indexed: true }));
    expect(second.result.map((e) => e.key)).toEqual([...mine].reverse());
    expect(second.read.filter((key) => others.has(key))).toEqual([]);
    await again.delete(mine[2]!);
    expect((await again.list({ taskName: "train", keep: true, indexed: true })).map((e) => e.key)).toEqual([mine[1], mine[0]]);
    const task = (await readdir(join(root, "cache", "index", "cairn"))).find((name) => !name.startsWith(".") && createHash("sha256").update("train").digest("hex").startsWith(name))!;
    const markers = () => readdir(join(root, "cache", "index", "cairn", task));
    expect(await markers()).toHaveLength(3);
    await again.set(makeEntry("train", { key: mine[0]!, createdAt: 5_000 })); // the same key again: a newer marker
    for (const name of await markers()) await utimes(join(root, "cache", "index", "cairn", task, name), new Date(0), new Date(0));
    await again.prune();
    expect((await markers()).sort()).toEqual([`1001-${mine[1]}`, `5000-${mine[0]}`]);
  });
});

describe("embedded store across processes", () => {
  it("loses and tears nothing when four processes write the same and different keys at once", async () => {
    const sharedKey = makeEntry().key;
    const writers = ["w1", "w2", "w3", "w4"].map((id) => runTs(fixture("embedded-writer.ts"), [root, id, "15", sharedKey]));
    let running = true;
    void Promise.all(writers).finally(() => (running = false));
    // Meanwhile read the shared file raw, as fast as we can: every read must be a whole entry.
    const file = join(entriesDir(), fileNameOfKey(`cairn:${sharedKey}`, ".json"));
    let wholeReads = 0;
    while (running) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch {
        await sleep(1);
        continue;
      }
      const { value } = JSON.parse(text) as { value: { outputs: { values: { payload: string; checksum: string } } } };
      const { payload, checksum } = value.outputs.values;
      expect(createHash("sha256").update(payload).digest("hex")).toBe(checksum);
      wholeReads++;
    }
    expect(await Promise.all(writers)).toEqual(["done", "done", "done", "done"]);
    expect(wholeReads).toBeGreaterThan(0);

    const store = await CacheStore.fromUrl(undefined, { root });
    const all = await store.list();
    expect(all).toHaveLength(4 * 15 + 1);
    expect((await store.get(sharedKey))?.sourceRunId).toMatch(/^w[1-4]-14$/);
    expect((await readdir(entriesDir())).filter((name) => name.startsWith("."))).toEqual([]);
  });

  it("gives each lease to exactly one of eight racing processes, free or expired", async () => {
    const keys = Array.from({ length: 12 }, () => makeEntry().key);
    // Half the keys start with a lease that has already expired, so the racers must steal it; its
    // holder is gone, as a live holder of this machine keeps it.
    await runTs(fixture("expired-leases.ts"), [join(root, "cache", "leases"), ...keys.slice(0, 6)]);
    await sleep(20);
    const startAt = Date.now() + 1500; // after every racer has loaded
    const racers = Array.from({ length: 8 }, () => runTs(fixture("lease-racer.ts"), [root, "8", String(startAt), "60", "30000", ...keys]));
    const lines = (await Promise.all(racers)).flatMap((out) => out.trim().split("\n").map((line) => JSON.parse(line)));
    expect(lines).toHaveLength(8 * 12);
    for (const key of keys) {
      expect(lines.filter((l) => l.key === key && l.acquired), `winners of ${key}`).toHaveLength(1);
    }
  });

  it("lets another process take over from a holder that was killed", async () => {
    const key = makeEntry().key;
    const holder = startTs(fixture("lease-holder.ts"), [root, key, "3000"]); // held past the refusal below, also on a loaded machine
    const { child, done } = holder;
    await lineFrom(holder, (line) => line.includes("held"));
    const store = await CacheStore.fromUrl(undefined, { root });
    const refused = await store.acquireLease(key, { ttlMs: 5000, owner: "me" });
    expect(refused).toMatchObject({ acquired: false, holder: `holder-${child.pid}` });
    child.kill("SIGKILL");
    await done;
    expect(await store.waitFor(key, { pollMs: 25 })).toBeUndefined(); // returns once the dead lease lapses
    const taken = await store.acquireLease(key, { ttlMs: 5000, owner: "me" });
    expect(taken.acquired).toBe(true);
  });

  it("takes over at once from a killed holder on this machine, without waiting for its lease to expire", async () => {
    const key = makeEntry().key;
    const holder = startTs(fixture("lease-holder.ts"), [root, key, "600000"]);
    const { child, done } = holder;
    await lineFrom(holder, (line) => line.includes("held"));
    const store = await CacheStore.fromUrl(undefined, { root });
    expect(await store.acquireLease(key, { ttlMs: 5000, owner: "me" })).toMatchObject({ acquired: false });
    child.kill("SIGKILL");
    await done;
    // The lease has ten minutes left, but its process is gone.
    expect(await store.waitFor(key, { pollMs: 25 })).toBeUndefined();
    expect((await store.acquireLease(key, { ttlMs: 5000, owner: "me" })).acquired).toBe(true);
  });

  it.runIf(currentOwner().space !== undefined)("keeps an expired lease whose holder is a live process of this machine that could not renew it", async () => {
    // Its event loop is busy (CPU-bound work in a function task): it did not crash, and taking
    // its lease would compute the key twice at once. Expiry decides only for holders nothing
    // here can check (another host or container), as for redis and postgres.
    const key = makeEntry().key;
    const release = join(root, "release");
    const holder = startTs(fixture("lease-busy-holder.ts"), [root, key, "200", release]);
    try {
      await lineFrom(holder, (line) => line === "held");
      const store = await CacheStore.fromUrl(undefined, { root });
      await sleep(400); // its 200 ms are over, unrenewed
      expect(await store.acquireLease(key, { ttlMs: 5000, owner: "me" })).toMatchObject({ acquired: false, holder: `holder-${holder.child.pid}` });
      const waiting = store.waitFor(key, { pollMs: 25 });
      await sleep(200);
      await writeFile(release, "");
      expect(await waiting).toBeUndefined(); // ends at the release, not before
      expect((await holder.done).stdout).toContain("released");
      expect((await store.acquireLease(key, { ttlMs: 5000, owner: "me" })).acquired).toBe(true);
    } finally {
      holder.child.kill("SIGKILL");
    }
  });

  it.runIf(currentOwner().space !== undefined)("never takes the live lease of a holder in another PID namespace with this host name", async (context) => {
    if (!canUnshare) context.skip("`unshare -p -f --mount-proc` is not permitted here (needs root or user namespaces)");
    // A container with the host's name (Docker's --network host, Kubernetes' hostNetwork) sharing
    // the project folder: its pid says nothing about the process with that pid here.
    const key = makeEntry().key;
    const holder = startTs(fixture("lease-holder.ts"), [root, key, "600000"], ["unshare", "-p", "-f", "--kill-child", "--mount-proc"]);
    try {
      await lineFrom(holder, (line) => line.includes("held"));
      const store = await CacheStore.fromUrl(undefined, { root });
      expect(await store.acquireLease(key, { ttlMs: 5000, owner: "me" })).toMatchObject({ acquired: false, holder: "holder-1" });
      expect(await store.peek(key)).toBeUndefined(); // no entry: still being computed
    } finally {
      holder.child.kill("SIGKILL");
    }
  });
});

describe("what a process killed with -9 leaves in the store", () => {
  const leasesDir = () => join(root, "cache", "leases");
  const leftovers = async () => ({
    temps: (await readdir(entriesDir())).filter((n) => n.startsWith(".tmp-")),
    leases: (await readdir(leasesDir())).filter((n) => n.endsWith(".lease")),
  });

  it("prune removes its unfinished temp file and its lease at once, by its owner (not its age); a live process's stay", async () => {
    const writer = startTs(fixture("killed-writer.ts"), [root, "killed-key"]);
    expect(await lineFrom(writer, (l) => l === "held, writing" || l === "refused")).toBe("held, writing");
    const store = await CacheStore.fromUrl(undefined, { root });
    await store.prune();
    expect(await leftovers()).toMatchObject({ temps: [expect.any(String)], leases: [fileNameOfKey("killed-key", ".lease")] });
    writer.child.kill("SIGKILL");
    await writer.done;
    await store.prune();
    expect(await leftovers()).toEqual({ temps: [], leases: [] });
  });

  it("a temp file named by an older Cairn (its pid alone) is left to its age", async () => {
    const ended = spawnSync(process.execPath, ["-e", ""]).pid!;
    const store = await CacheStore.fromUrl(undefined, { root });
    await store.set(makeEntry());
    await writeFile(join(entriesDir(), `.tmp-${ended}-0-0123456789ab`), "");
    await store.prune();
    expect((await readdir(entriesDir())).filter((n) => n.startsWith(".tmp-"))).toEqual([`.tmp-${ended}-0-0123456789ab`]);
  });
});

