/**
 * Whether a file read earlier still holds what was read, asked cheaply: a task's code files are
 * read when its key is made (or once per flow run), and asked again when its attempt ends, so that
 * a result is stored only under the key of the code that made it. One stat answers while the file
 * is as it was stamped; only a file whose stat changed is read again, and it counts as edited only
 * when its digest changed too (a `touch`, a checkout that rewrote it as it was, is no edit).
 */
import { stat } from "node:fs/promises";
import { statSync, type BigIntStats } from "node:fs";

/**
 * A modification time this close to the stamp's taking (either side) is not trusted: on a file
 * system whose times are coarse, an edit within the same tick keeps the size and the times.
 */
const SETTLE_MS = 2_000;

/** A file as it was read: its digest, and its stat then (undefined when that cannot vouch for it). */
export interface ReadFile {
  readonly digest: string;
  readonly stamp: string | undefined;
}

function stampOf(info: BigIntStats, now: number): string | undefined {
  if (Math.abs(now - Number(info.mtimeNs / 1_000_000n)) < SETTLE_MS) return undefined;
  return `${info.size} ${info.mtimeNs} ${info.ino} ${info.ctimeNs}`;
}

/**
 * `path` read by `digest` (sync), with its stat taken before and after the read: a stamp only when
 * both agree, so that a write during the read leaves none (the next check reads it again).
 */
export function readStampedSync(path: string, digest: (path: string) => string): ReadFile {
  const before = statSync(path, { bigint: true });
  const value = digest(path);
  const after = statSync(path, { bigint: true, throwIfNoEntry: false });
  const now = Date.now();
  const stamp = after ? stampOf(before, now) : undefined;
  return { digest: value, stamp: stamp !== undefined && stamp === stampOf(after!, now) ? stamp : undefined };
}

/** {@link readStampedSync}, reading with an async `digest`. */
export async function readStamped(path: string, digest: (path: string) => Promise<string>): Promise<ReadFile> {
  const before = await stat(path, { bigint: true });
  const value = await digest(path);
  const after = await stat(path, { bigint: true }).catch(() => undefined);
  const now = Date.now();
  const stamp = after ? stampOf(before, now) : undefined;
  return { digest: value, stamp: stamp !== undefined && stamp === stampOf(after!, now) ? stamp : undefined };
}

/**
 * Whether `path` no longer holds what `read` was read from: false on an unchanged stat, else its
 * digest made again by `digest` and compared. A file gone or unreadable counts as edited.
 */
export async function editedSince(path: string, read: ReadFile, digest: (path: string) => Promise<string>): Promise<boolean> {
  const info = await stat(path, { bigint: true }).catch(() => undefined);
  if (!info) return true;
  if (read.stamp !== undefined && stampOf(info, Date.now()) === read.stamp) return false;
  return (await digest(path).catch(() => undefined)) !== read.digest;
}
