import { EventEmitter } from "node:events";
import { mkdir, readdir, stat, unlink } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import type { KeyvStoreAdapter, StoredData } from "keyv";
import { TEMP_PREFIX, errorCode, fileNameOfKey, isDeadTemp, keyOfFileName, readSmallFile, writeFileAtomic } from "./_files.ts";

const EXTENSION = ".json";

/**
 * A keyv store adapter that keeps one file per key in a folder, safe for many
 * processes at once: every write goes to a temp file that is renamed over the
 * old one, so readers see a whole entry or none, and the last writer wins.
 * Expiry is keyv's own (`expires` inside the serialized value), checked on read.
 *
 * @example
 * const keyv = new Keyv({ store: new EmbeddedKeyvStore(".cairn/cache/entries") });
 */
export class EmbeddedKeyvStore extends EventEmitter implements KeyvStoreAdapter {
  /** Absolute folder holding the files. */
  readonly dir: string;
  /** Read by keyv: `dialect` and `url` say what this store is. */
  opts: { dialect: "cairn-embedded"; url: string; dir: string };
  /** Set by keyv; keys arrive already prefixed with it. */
  namespace?: string | undefined;
  private ready: Promise<unknown> | undefined;

  constructor(dir: string) {
    super();
    this.dir = resolve(dir);
    this.opts = { dialect: "cairn-embedded", url: pathToFileURL(this.dir).href, dir: this.dir };
  }

  private ensureDir(): Promise<unknown> {
    this.ready ??= mkdir(this.dir, { recursive: true });
    return this.ready;
  }

  private pathOf(key: string): string {
    // Concatenated: a key's file name has no separator and no dot (see fileNameOfKey), and path.join costs microseconds a call.
    return this.dir + sep + fileNameOfKey(key, EXTENSION);
  }

  /** The raw serialized value, or `undefined` when absent. */
  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    return this.read(key) as StoredData<Value> | undefined;
  }

  /**
   * The raw serialized value, or `undefined` when absent, read synchronously: a caller that parses
   * it in the same step lets go of the text at once. Through `get`, the text waits for its parse in
   * a promise, and a run that looks up thousands of hits at once held all their texts together.
   */
  read(key: string): string | undefined {
    return readSmallFile(this.pathOf(key));
  }

  /** Atomically replaces the file of `key`. TTL is carried inside `value` by keyv. */
  async set(key: string, value: unknown, _ttl?: number): Promise<boolean> {
    await this.ensureDir();
    const data = typeof value === "string" ? value : JSON.stringify(value);
    await writeFileAtomic(this.dir, fileNameOfKey(key, EXTENSION), data);
    return true;
  }

  /** Removes the file of `key`; `false` when there was none. */
  async delete(key: string): Promise<boolean> {
    try {
      await unlink(this.pathOf(key));
      return true;
    } catch (error) {
      if (errorCode(error) === "ENOENT") return false;
      throw error;
    }
  }

  /** Removes every key of this namespace (all keys when there is none). */
  async clear(): Promise<void> {
    for await (const key of this.keys(this.namespace)) await this.delete(key);
  }

  async has(key: string): Promise<boolean> {
    try {
      await stat(this.pathOf(key));
      return true;
    } catch {
      return false;
    }
  }

  /** Yields `[key, raw]` for every key of `namespace`; files removed meanwhile are skipped. */
  async *iterator<Value>(namespace?: string): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    const keys: string[] = [];
    for await (const key of this.keys(namespace)) keys.push(key);
    // Reads a batch at a time: listing 10,000 entries one by one is needlessly slow.
    for (let start = 0; start < keys.length; start += 64) {
      const batch = keys.slice(start, start + 64);
      const raws = await Promise.all(batch.map((key) => this.get<Value>(key)));
      for (const [i, raw] of raws.entries()) if (raw !== undefined) yield [batch[i]!, raw as Awaited<Value>];
    }
  }

  /** Removes temp files left by crashed writers (gone from this machine, or older than `olderThanMs`); returns how many. */
  async removeStaleTempFiles(olderThanMs: number): Promise<number> {
    let removed = 0;
    for (const name of await this.names()) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const path = join(this.dir, name);
      try {
        if (isDeadTemp(name) || Date.now() - (await stat(path)).mtimeMs > olderThanMs) {
          await unlink(path);
          removed++;
        }
      } catch {
        // Renamed or removed by its writer meanwhile.
      }
    }
    return removed;
  }

  async disconnect(): Promise<void> {}

  /** The keys of `namespace` (all when none), from the files' names: reads no entry. */
  async *keys(namespace?: string): AsyncGenerator<string> {
    const prefix = namespace ? `${namespace}:` : "";
    for (const name of await this.names()) {
      const key = keyOfFileName(name, EXTENSION);
      if (key !== undefined && key.startsWith(prefix)) yield key;
    }
  }

  private async names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (error) {
      if (errorCode(error) === "ENOENT") return [];
      throw error;
    }
  }
}
