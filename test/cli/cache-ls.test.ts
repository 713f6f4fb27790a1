/**
 * `cairn cache ls` of a large store: it holds of each entry what it prints, not the entry's
 * outputs, and `--task` reads that task's entries alone (through the embedded store's index by task).
 */
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CacheStore } from "@cairn/cache";
import { makeEntry } from "../../packages/cache/test/store-suite.ts";
import { cairn, tmp } from "./helpers.ts";

/** A project whose embedded store holds `count` entries of `taskName`, each with a value of `valueBytes`. */
async function storeOf(cwd: string, taskName: string, count: number, valueBytes: number): Promise<string[]> {
  const store = await CacheStore.fromUrl(undefined, { root: join(cwd, ".cairn") });
  const keys: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const entry = makeEntry(taskName, { outputs: { values: { text: String(i).padEnd(valueBytes, "x") }, artifacts: [] } });
      await store.set(entry);
      keys.push(entry.key);
    }
  } finally {
    await store.close();
  }
  return keys;
}

describe("cairn cache ls of a large store", () => {
  it("lists 400 entries of 250 KB each in a process of 64 MB of heap: it keeps what it prints of each, not its outputs", async () => {
    const cwd = await tmp("cairn-cli-cache-ls-");
    await storeOf(cwd, "blob", 400, 250_000);
    // Before: every whole entry was held until the table was printed, 100 MB: out of memory.
    const r = await cairn(["cache", "ls"], { cwd, env: { NODE_OPTIONS: "--max-old-space-size=64" } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const rows = r.stdout.split("\n").filter((l) => l.startsWith("blob "));
    expect(rows).toHaveLength(400);
    expect(rows[0]).toMatch(/^blob\s+[0-9a-f]{16}\s+run-[0-9a-f]{8}\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+244\.15 KB$/);
  }, 120_000);

  it("--task reads that task's entries alone: another task's damaged entry is neither read nor evicted", async () => {
    const cwd = await tmp("cairn-cli-cache-ls-");
    const [mine] = await storeOf(cwd, "mine", 1, 10);
    const [other] = await storeOf(cwd, "other", 1, 10);
    const entries = join(cwd, ".cairn", "cache", "entries");
    const otherFile = (await readdir(entries)).find((name) => name.includes(other!));
    expect(otherFile).toBeDefined();
    await writeFile(join(entries, otherFile!), "not json");
    const one = await cairn(["cache", "ls", "--task", "mine"], { cwd });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain(mine!.slice(0, 16));
    // Before: every entry was read, and the other task's damaged one evicted by a listing of this task.
    expect(one.stdout).not.toContain("could not be read");
    expect((await readdir(entries)).some((name) => name.includes(other!))).toBe(true);
    const none = await cairn(["cache", "ls", "--task", "nosuch"], { cwd });
    expect(none.stdout).toMatch(/^No cache entries of task "nosuch" in the cache at .*\.\n$/);
    // The listing of all still reads it and says so; it only reads, so the value stays for a run or prune to evict.
    const all = await cairn(["cache", "ls"], { cwd });
    expect(all.stdout).toContain(mine!.slice(0, 16));
    expect(all.stdout).toContain("1 stored value in the cache at");
    expect(all.stdout).toContain("`cairn cache ls` only reads, so it stays in the store until a run that meets it or `cairn cache prune` evicts it.");
    expect((await readdir(entries)).some((name) => name.includes(other!))).toBe(true);
    const pruned = await cairn(["cache", "prune", "--older-than", "365d"], { cwd });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect((await readdir(entries)).some((name) => name.includes(other!))).toBe(false);
  }, 60_000);
});
