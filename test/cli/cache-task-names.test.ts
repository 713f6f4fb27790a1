/**
 * `cairn cache ls|clear --task NAME` where the store holds no entry of NAME: a typo, a map's item
 * or a node's id said as such, with the task names the store holds, instead of "Removed 0".
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CacheStore } from "@cairn/cache";
import { makeEntry } from "../../packages/cache/test/store-suite.ts";
import { cairn, tmp, useMlflowServer } from "./helpers.ts";

/** A project whose embedded store holds one entry of each of `tasks`. */
async function projectWith(tasks: string[]): Promise<string> {
  const cwd = await tmp("cairn-cli-cache-task-");
  const store = await CacheStore.fromUrl(undefined, { root: join(cwd, ".cairn") });
  try {
    for (const task of tasks) await store.set(makeEntry(task));
  } finally {
    await store.close();
  }
  return cwd;
}

const count = async (cwd: string) => (JSON.parse((await cairn(["cache", "ls", "--json"], { cwd })).stdout) as unknown[]).length;

describe("cairn cache --task NAME of no entry", () => {
  it("clear of a typo warns with the names it may have meant and those the store holds (exit 0: nothing to do); nothing is removed", async () => {
    const cwd = await projectWith(["extract", "load", "report"]);
    const r = await cairn(["cache", "clear", "--task", "lod"], { cwd });
    // Before: 'Removed 0 cache entries of task "lod"', exit 0, and no word of the names.
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Removed 0 cache entries of task "lod" from ${join(cwd, ".cairn", "cache")}.`);
    expect(r.stderr).toContain(
      `cairn: warning: removed nothing: no cache entries of task "lod" in the cache at ${join(cwd, ".cairn", "cache")}. --task takes a task name the cache holds (did you mean "load"?): extract, load, report.`,
    );
    expect(await count(cwd)).toBe(3);
  });

  it("a node's id is said as one, and warned of by clear as a typo of its task's name (a new task of that name may have no entry yet: exit 0)", async () => {
    const cwd = await projectWith(["extract", "load"]);
    const r = await cairn(["cache", "clear", "--task", "load-2"], { cwd });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      '"load-2" looks like the id of a node of task "load" in a flow, whose entries are kept under the task\'s name. --task takes a task name the cache holds (did you mean "load"?): extract, load.',
    );
    expect(await count(cwd)).toBe(2);
  });

  it("a map's item is refused by ls and clear (exit 2), before anything is touched", async () => {
    const cwd = await projectWith(["extract", "load"]);
    for (const sub of ["ls", "clear"]) {
      const r = await cairn(["cache", sub, "--task", "extract[0]"], { cwd });
      // Before: ls said "No cache entries", clear "Removed 0 cache entries", both exit 0.
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `UsageError: Expected --task to be a task name, got "extract[0]". "extract[0]" is an item of a map, whose entries are kept under its task's name (--task with that name takes every item's). ` +
          `--task takes a task name the cache holds (did you mean "extract"?): extract, load. Nothing was ${sub === "ls" ? "listed" : "removed"}.`,
      );
    }
    expect(await count(cwd)).toBe(2);
  });

  it("ls of a name none is close to says the names the store holds (exit 0), and so does clear of it, which has nothing to do", async () => {
    const cwd = await projectWith(["extract", "load"]);
    const ls = await cairn(["cache", "ls", "--task", "zzz"], { cwd });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toBe(`No cache entries of task "zzz" in the cache at ${join(cwd, ".cairn", "cache")}. --task takes a task name the cache holds: extract, load.\n`);
    const json = await cairn(["cache", "ls", "--task", "zzz", "--json"], { cwd });
    expect(json.stdout).toBe("[]\n");
    expect(json.stderr).toContain('No cache entries of task "zzz". --task takes a task name the cache holds: extract, load.');
    const clear = await cairn(["cache", "clear", "--task", "zzz"], { cwd });
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.stdout).toBe(`Removed 0 cache entries of task "zzz" from ${join(cwd, ".cairn", "cache")}. --task takes a task name the cache holds: extract, load.\n`);
    expect(await count(cwd)).toBe(2);
    // A task's own name still clears it, as before.
    const load = await cairn(["cache", "clear", "--task", "load"], { cwd });
    expect(load.stdout).toBe(`Removed 1 cache entry of task "load" from ${join(cwd, ".cairn", "cache")}.\n`);
    expect(await count(cwd)).toBe(1);
  });
});

describe("cairn cache clear --task NAME of no entry, with an MLflow server", () => {
  const server = useMlflowServer();

  it("warns of a typo only once the experiments' indexes had none of its entries either; says the names for another name (exit 0 both)", async () => {
    const cwd = await projectWith(["extract", "load"]);
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const typo = await cairn(["cache", "clear", "--task", "lod"], { cwd, env });
    expect(typo.code).toBe(0);
    expect(typo.stderr).toContain(`cairn: warning: removed nothing: no cache entries of task "lod" in the cache at ${join(cwd, ".cairn", "cache")} nor in the experiments' indexes. --task takes a task name the cache holds (did you mean "load"?): extract, load.`);
    const other = await cairn(["cache", "clear", "--task", "zzz"], { cwd, env });
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toBe(`Removed 0 cache entries of task "zzz" from ${join(cwd, ".cairn", "cache")}. --task takes a task name the cache holds: extract, load.\n`);
    expect(await count(cwd)).toBe(2);
  }, 120_000);
});
