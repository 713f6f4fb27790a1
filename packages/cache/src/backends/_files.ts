/** @internal File helpers shared by the embedded store and the file leases. */
import { randomBytes } from "node:crypto";
import { mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Prefix of temporary files; readers skip every name starting with a dot. */
export const TEMP_PREFIX = ".tmp-";

let counter = 0;

/** A name unique across processes and calls, for temp files and tokens. */
export function uniqueId(): string {
  return `${process.pid}-${(counter++).toString(36)}-${randomBytes(6).toString("hex")}`;
}

/**
 * A reversible file name for a key: every byte outside `[A-Za-z0-9_-]`
 * becomes `%XX`, so `cairn:ab12` is `cairn%3Aab12` (and no name starts with a dot).
 */
export function fileNameOfKey(key: string, extension: string): string {
  const encoded = Array.from(new TextEncoder().encode(key), (byte) => {
    const c = String.fromCharCode(byte);
    return /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
  return `${encoded}${extension}`;
}

/** The key a {@link fileNameOfKey} name stands for, or `undefined` for other files. */
export function keyOfFileName(name: string, extension: string): string | undefined {
  if (name.startsWith(".") || !name.endsWith(extension)) return undefined;
  try {
    return decodeURIComponent(name.slice(0, -extension.length));
  } catch {
    return undefined;
  }
}

/**
 * Writes a file so that readers see either the old or the whole new content,
 * never a part: write a temp file in the same folder, then rename over.
 */
export async function writeFileAtomic(dir: string, name: string, data: string): Promise<void> {
  const temp = join(dir, `${TEMP_PREFIX}${uniqueId()}`);
  try {
    await writeFile(temp, data);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    // The folder was removed under us (e.g. `rm -rf .cairn`): make it again once.
    await mkdir(dir, { recursive: true });
    await writeFile(temp, data);
  }
  try {
    await rename(temp, join(dir, name));
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** `code` of a Node fs error, if any. */
export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
