import { join, resolve } from "node:path";
import { Keyv } from "keyv";
import { type CacheBackend, type StoredValue, entriesOf, jsonSerialization } from "./_backend.ts";
import { EmbeddedKeyvStore } from "./embedded-store.ts";
import { EntryIndex } from "./entry-index.ts";
import { FileLeases } from "./file-leases.ts";

/** Temp files older than this were left by a crashed writer. */
const STALE_TEMP_MS = 60 * 60_000;

/** @internal Opens the embedded store under `<root>/cache`: `entries/`, `index/` (see entry-index.ts) and `leases/`. */
export function openEmbeddedBackend(root: string, namespace: string): CacheBackend {
  const dir = resolve(root, "cache");
  const store = new EmbeddedKeyvStore(join(dir, "entries"));
  const keyv = new Keyv({ store, namespace, throwOnErrors: true, ...jsonSerialization });
  const leases = new FileLeases(join(dir, "leases"));
  const index = new EntryIndex(join(dir, "index"), namespace, store, stored);
  return {
    kind: "embedded",
    location: dir,
    keyv,
    leases,
    entries: entriesOf(keyv, store),
    async readStored(key) {
      // Read and parsed in one step: the entry's text is garbage before the next lookup reads its own.
      const raw = store.read(`${namespace}:${key}`);
      return raw === undefined ? undefined : stored(raw);
    },
    async *storedEntries() {
      for await (const [key, raw] of store.iterator<string>(namespace)) yield [String(key).slice(namespace.length + 1), stored(raw)];
    },
    async noteEntry(entry) {
      index.note(entry.key, entry.taskName, entry.createdAt);
    },
    async *storedEntriesOf(taskName, before) {
      for await (const [key, raw] of index.entriesOf(taskName, before)) yield [key, stored(raw)];
    },
    async sweep() {
      await store.removeStaleTempFiles(STALE_TEMP_MS);
      await index.sweep(STALE_TEMP_MS);
      await leases.sweep();
    },
    async close() {},
  };
}

/** A raw stored value as keyv would deserialize it, without keyv's deletion of an expired one. */
function stored(raw: unknown): StoredValue {
  const data = (typeof raw === "string" ? jsonSerialization.deserialize(raw) : raw) as { value?: unknown; expires?: unknown };
  return { value: data?.value, ...(typeof data?.expires === "number" ? { expires: data.expires } : {}) };
}
