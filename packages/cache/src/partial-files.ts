/**
 * Partial downloads: a file or folder that is not whole yet is written under a sibling name
 * `<name>.part-<owner>-<random>` and renamed to `<name>` once whole, so the final name never
 * holds a part. The owner in the name (see process-owner.ts) lets a later download in the same
 * folder tell the leftover of a killed process (`kill -9` mid-download) from one still being
 * written by a live process, and remove only the former: nothing else ever would.
 */
import { randomBytes } from "node:crypto";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { formatOwner, ownerIsGone, parseOwner } from "./process-owner.ts";

const PARTIAL = /\.part-(.+)-[0-9a-f]{12}$/;

/** The name `path` is written under until it is whole; another each call. */
export function partialPath(path: string): string {
  return `${path}.part-${formatOwner()}-${randomBytes(6).toString("hex")}`;
}

/**
 * Removes the partial files and folders in `dir` (not below it) whose owner is a process of
 * this machine that no longer exists. Those of live processes, of other hosts and of owners
 * that cannot be told are kept. Best effort: a folder that cannot be read or a leftover that
 * cannot be removed is left as it is.
 */
export async function sweepDeadPartials(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      const owner = PARTIAL.exec(name)?.[1];
      if (owner === undefined || !ownerIsGone(parseOwner(owner))) return;
      await rm(join(dir, name), { recursive: true, force: true }).catch(() => {});
    }),
  );
}
