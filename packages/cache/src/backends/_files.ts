/** @internal File helpers shared by the embedded store and the file leases. */
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { access, mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { formatOwner, ownerIsGone, parseOwner } from "../process-owner.ts";

/** Prefix of temporary files; readers skip every name starting with a dot. */
export const TEMP_PREFIX = ".tmp-";

let counter = 0;

/** A name unique across processes and calls, for tokens. */
export function uniqueId(): string {
  return `${process.pid}-${(counter++).toString(36)}-${randomBytes(6).toString("hex")}`;
}

/**
 * A temp file's name, unique across processes and calls. It names its writer (see
 * process-owner.ts), so that a sweep tells the leftover of a writer killed mid-write, which no
 * one would ever rename or remove, from a write under way, and a reused pid from its writer.
 */
export function tempName(): string {
  // `+` for the owner's `:`, which Windows refuses in a file name (a host name holds no `+`).
  return `${TEMP_PREFIX}${formatOwner().replaceAll(":", "+")}-${(counter++).toString(36)}-${randomBytes(6).toString("hex")}`;
}

const TEMP_NAME = /^\.tmp-(.+)-[0-9a-z]+-[0-9a-f]{12}$/;

/**
 * True for a temp file ({@link tempName}) whose writer is a process of this machine that is
 * gone. False for a live writer's, another host's, and a name of an older Cairn that says only
 * its pid (those are left to the age of the file).
 */
export function isDeadTemp(name: string): boolean {
  const owner = TEMP_NAME.exec(name)?.[1];
  return owner !== undefined && ownerIsGone(parseOwner(owner.replaceAll("+", ":")));
}

/**
 * A reversible file name for a key: every byte outside `[A-Za-z0-9_-]`
 * becomes `%XX`, so `cairn:ab12` is `cairn%3Aab12` (and no name starts with a dot).
 */
export function fileNameOfKey(key: string, extension: string): string {
  return `${key.replace(UNSAFE_RUN, percentEncode)}${extension}`;
}

const UNSAFE_RUN = /[^A-Za-z0-9_-]+/g;
const utf8 = new TextEncoder();

function percentEncode(run: string): string {
  let out = "";
  // Most runs are one ASCII character (the `:` after the namespace): no TextEncoder call for them.
  if (run.length === 1 && run.charCodeAt(0) < 0x80) return `%${run.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
  for (const byte of utf8.encode(run)) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
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

/** Below this size a file is written synchronously (see {@link writeFileAtomic}). */
export const SMALL_FILE_BYTES = 256 * 1024;

/**
 * Writes a file so that readers see either the old or the whole new content,
 * never a part: write a temp file in the same folder, then rename over.
 *
 * Small files (entries, leases) are written with the synchronous calls: each fs/promises
 * call is a round trip through libuv's thread pool, which costs more than the write itself
 * for a file this small (BENCHMARKS.md, "Why the code is shaped so").
 */
export async function writeFileAtomic(dir: string, name: string, data: string): Promise<void> {
  const fs = data.length < SMALL_FILE_BYTES ? syncFs : asyncFs;
  const temp = join(dir, tempName());
  try {
    try {
      await fs.writeFile(temp, data);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // The folder was removed under us (e.g. `rm -rf .cairn`): make it again once.
      await fs.makeDir(dir);
      await fs.writeFile(temp, data);
    }
    await fs.rename(temp, join(dir, name));
  } catch (error) {
    // Also a write that failed part-way (a full disk): its partial temp file would stay for good.
    await fs.unlink(temp).catch(() => {});
    throw error;
  }
}

/** The four calls writeFileAtomic makes. */
interface AtomicWriteFs {
  writeFile(path: string, data: string): Promise<void>;
  makeDir(path: string): Promise<unknown>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}
const asyncFs: AtomicWriteFs = { writeFile, makeDir: (path) => mkdir(path, { recursive: true }), rename, unlink };
/** The same calls, done synchronously (errors still arrive as rejections). */
const syncFs: AtomicWriteFs = {
  writeFile: async (path, data) => writeFileSync(path, data),
  makeDir: async (path) => mkdirSync(path, { recursive: true }),
  rename: async (from, to) => renameSync(from, to),
  unlink: async (path) => unlinkSync(path),
};

/** readFileSync's options as one object: given a string, Node makes an options object per call. */
const UTF8 = Object.freeze({ encoding: "utf8", flag: "r" } as const);

/**
 * The content of a file, or `undefined` when it does not exist. Synchronous for the
 * same reason as {@link writeFileAtomic}.
 */
export function readSmallFile(path: string): string | undefined {
  try {
    return readFileSync(path, UTF8);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** Whether something exists at `path` (a link counts by its target); `false` when it cannot be seen. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** `code` of a Node fs error, if any. */
export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * `<tmp>/cairn-<uid>/<sub>`, made for this user alone, or `undefined` when it cannot be trusted:
 * the temp folder is shared, so another user may have made `cairn-<uid>` first (or a link by
 * that name) to plant files that Cairn would then read, or import. Trusted only when it is a real
 * folder of this user's that no one else can write to (where there are no uids, as on Windows, as made).
 */
export function privateTempDir(sub: string): string | undefined {
  try {
    // userInfo() throws for a uid with no passwd entry (a container's `--user 1234`); getuid does
    // not, and gives the same number where there are uids (userInfo's -1 is for Windows).
    const uid = process.getuid?.();
    const base = join(tmpdir(), `cairn-${uid ?? userInfo().uid}`);
    const dir = join(base, sub);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (uid === undefined) return dir;
    for (const path of [base, dir]) {
      const s = lstatSync(path);
      if (!s.isDirectory() || s.uid !== uid) return undefined;
      if ((s.mode & 0o022) !== 0) {
        // This user's, made by an older Cairn under a umask such as 002: others of its group could
        // write in it, so what it holds is not trusted. Made private and emptied, it is used again.
        chmodSync(path, 0o700);
        for (const name of readdirSync(path)) rmSync(join(path, name), { recursive: true, force: true });
        if (path === base) mkdirSync(dir, { recursive: true, mode: 0o700 });
      }
    }
    return dir;
  } catch {
    return undefined;
  }
}

