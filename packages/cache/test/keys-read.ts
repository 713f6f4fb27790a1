/** Test fixture: which entries the embedded store reads while a piece of work runs. */
import { vi } from "vitest";
import { EmbeddedKeyvStore } from "../src/backends/embedded-store.ts";

/**
 * Runs `work` and returns its result with the keys (namespace left off) that every
 * embedded store of this process read meanwhile: a miss or a listing proves by them
 * that it read its task's entries alone.
 */
export async function keysRead<T>(work: () => Promise<T>): Promise<{ result: T; read: string[] }> {
  const read: string[] = [];
  const get = EmbeddedKeyvStore.prototype.get;
  const spy = vi.spyOn(EmbeddedKeyvStore.prototype, "get").mockImplementation(function (this: EmbeddedKeyvStore, key: string) {
    read.push(key.slice(key.indexOf(":") + 1));
    return get.call(this, key);
  });
  try {
    return { result: await work(), read };
  } finally {
    spy.mockRestore();
  }
}
