/**
 * The embedded store's index of its entries by task: one empty file per entry, named
 * `<createdAt>-<key>`, in `<cache>/index/<namespace>/<task digest>/`, written before the entry
 * itself. A run's miss compares with its task's newest earlier entries (`CacheStore.list` with
 * `indexed`): read through this index, it reads that task's folder and those entries only, not
 * every entry of every flow, which made each miss of a long-lived service cost a read of the
 * whole store.
 *
 * The index may hold more than the entries (a marker whose entry was deleted, or replaced by a
 * newer one of the same key): a marker whose entry is gone is skipped, the newest marker of a key
 * stands for it, and prune's sweep removes the rest. It may hold less: the entries made before it
 * are marked once, by the first listing through it (`.complete` says so); entries that a Cairn
 * without it writes after that are not, and a miss then compares with fewer entries.
 */
import { createHash } from "node:crypto";
import { mkdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { errorCode, pathExists } from "./_files.ts";
import type { EmbeddedKeyvStore } from "./embedded-store.ts";

/** `<createdAt>-<key>`: epoch ms, the key as the store has it (a file name already). */
const MARKER = /^(\d{1,16})-([A-Za-z0-9_.-]{1,128})$/;
/** Written once every entry made before the index has its marker (see {@link EntryIndex.entriesOf}). */
const COMPLETE = ".complete";
/** Entries read at once while listing (as the store's own iterator does). */
const BATCH = 16;

/** One marker as its name says. */
interface Marker {
  createdAt: number;
  key: string;
  name: string;
}

/** @internal The task index of one namespace of an embedded store (see the module header). */
export class EntryIndex {
  private readonly dir: string;
  /** The tasks' folders made by this process. */
  private readonly made = new Set<string>();
  /** The marking of the entries made before the index, once per process. */
  private marked: Promise<void> | undefined;

  constructor(
    indexRoot: string,
    private readonly namespace: string,
    private readonly store: EmbeddedKeyvStore,
    /** A stored raw value as `{ value, expires }`, as the store's reads give it. */
    private readonly parse: (raw: unknown) => { value: unknown; expires?: number },
  ) {
    this.dir = join(indexRoot, namespace);
  }

  /**
   * Marks `key` as an entry of `taskName` made at `createdAt`. Written before the entry: a marker
   * without its entry is skipped. Never fails the entry's write: a marker that cannot be written
   * (a task's folder made by another user of a shared `.cairn`, a full disk) only leaves the entry
   * out of its task's listings, so that a miss compares with fewer entries.
   */
  note(key: string, taskName: string, createdAt: number): void {
    this.mark(digestOf(taskName), markerOf(createdAt, key).name);
  }

  /**
   * `[key, raw value]` of the entries of `taskName` made before `before` (all when undefined),
   * newest first as marked, each key once. Reads no entry of another task, except once per store:
   * the first listing marks every entry made before the index (by a Cairn without it).
   * Deletes no entry.
   */
  async *entriesOf(taskName: string, before?: number): AsyncGenerator<[string, unknown]> {
    await (this.marked ??= this.markEarlier());
    const newest = newestOf(await this.markers(digestOf(taskName)));
    const mine = [...newest.values()]
      .filter((m) => before === undefined || m.createdAt < before)
      .sort((a, b) => b.createdAt - a.createdAt)
      .map((m) => m.key);
    for (let start = 0; start < mine.length; start += BATCH) {
      const batch = mine.slice(start, start + BATCH);
      const raws = await Promise.all(batch.map((key) => this.read(key)));
      for (const [i, raw] of raws.entries()) if (raw !== undefined) yield [batch[i]!, raw];
    }
  }

  /**
   * Removes markers that stand for nothing: older markers of a key marked again, and markers
   * older than `olderThanMs` whose entry is gone (a younger one may be a write under way).
   */
  async sweep(olderThanMs: number): Promise<void> {
    const keys = new Set<string>();
    for await (const key of this.store.keys(this.namespace)) keys.add(key.slice(this.namespace.length + 1));
    for (const task of await names(this.dir)) {
      if (task.startsWith(".")) continue;
      const markers = await this.markers(task);
      const newest = newestOf(markers);
      for (const marker of markers) {
        const keep = keys.has(marker.key) ? newest.get(marker.key) === marker : !this.olderThan(join(this.dir, task, marker.name), olderThanMs);
        if (keep) continue;
        try {
          unlinkSync(join(this.dir, task, marker.name));
        } catch {
          // Removed by another sweep meanwhile.
        }
      }
    }
  }

  /**
   * Marks the entries made before the index, unless done (by any process): reads each once.
   * Entries written later by a Cairn without the index are not marked: a miss compares with
   * the entries it finds marked (see README, "Why a task missed").
   */
  private async markEarlier(): Promise<void> {
    if (await pathExists(join(this.dir, COMPLETE))) return;
    const keys: string[] = [];
    for await (const key of this.store.keys(this.namespace)) keys.push(key.slice(this.namespace.length + 1));
    for (let start = 0; start < keys.length; start += BATCH) {
      const batch = keys.slice(start, start + BATCH);
      const raws = await Promise.all(batch.map((key) => this.read(key)));
      for (const [i, raw] of raws.entries()) {
        const { taskName, createdAt = 0 } = raw === undefined ? {} : taskOf(this.parse(raw).value);
        // Not an entry (not JSON, no task): nothing a miss could be compared with.
        if (taskName !== undefined) this.mark(digestOf(taskName), markerOf(createdAt, batch[i]!).name);
      }
    }
    try {
      this.write(undefined, COMPLETE);
    } catch {
      // Not written (a read-only `.cairn`): the next process marks them again.
    }
  }

  /** A task's markers, as their names say (names only: no entry is read). */
  private async markers(task: string): Promise<Marker[]> {
    const markers: Marker[] = [];
    for (const name of await names(join(this.dir, task))) {
      const match = MARKER.exec(name);
      if (match) markers.push({ createdAt: Number(match[1]), key: match[2]!, name });
    }
    return markers;
  }

  private async read(key: string): Promise<unknown> {
    return this.store.get(`${this.namespace}:${key}`);
  }

  /** Writes a marker, which cannot fail the listing or the entry's write it is for (a read-only `.cairn`). */
  private mark(task: string, name: string): void {
    try {
      this.write(task, name);
    } catch {
      // Unmarked, the entry is left out of its task's listings: a miss then says less, never wrongly.
    }
  }

  /** Writes an empty file `name` in the folder of `task` (the index's own folder when undefined). */
  private write(task: string | undefined, name: string): void {
    const dir = task === undefined ? this.dir : join(this.dir, task);
    if (!this.made.has(dir)) mkdirSync(dir, { recursive: true });
    this.made.add(dir);
    try {
      writeFileSync(join(dir, name), "");
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
      // The folder was removed under us (e.g. `rm -rf .cairn`): make it again once.
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, name), "");
    }
  }

  private olderThan(path: string, ms: number): boolean {
    try {
      return Date.now() - statSync(path).mtimeMs > ms;
    } catch {
      return false;
    }
  }
}

/** A folder's names; none when it does not exist (or a file stands in its place: nothing was marked in it). */
async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw error;
  }
}

/** The newest marker of each key. */
function newestOf(markers: Marker[]): Map<string, Marker> {
  const newest = new Map<string, Marker>();
  for (const marker of markers) {
    const seen = newest.get(marker.key);
    if (!seen || marker.createdAt > seen.createdAt) newest.set(marker.key, marker);
  }
  return newest;
}

/** A marker; a time its name cannot hold (negative, fractional) is kept as the nearest it can. */
function markerOf(createdAt: number, key: string): Marker {
  const at = Math.max(0, Math.trunc(createdAt));
  return { createdAt: at, key, name: `${at}-${key}` };
}

/** A task name as a fixed-length part of a file name: any name, of any length, fits. */
function digestOf(taskName: string): string {
  return createHash("sha256").update(taskName).digest("hex").slice(0, 32);
}

/** The task and creation time a stored value says, where it says them. */
function taskOf(value: unknown): { taskName?: string; createdAt?: number } {
  if (typeof value !== "object" || value === null) return {};
  const { taskName, createdAt } = value as { taskName?: unknown; createdAt?: unknown };
  return {
    ...(typeof taskName === "string" ? { taskName } : {}),
    ...(typeof createdAt === "number" && Number.isFinite(createdAt) ? { createdAt } : {}),
  };
}
