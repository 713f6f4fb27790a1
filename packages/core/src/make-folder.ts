/**
 * `mkdir -p` whose failure says why. A recursive mkdir on a read-only file system reports
 * ENOENT ("no such file or directory") for a folder whose parent exists (Node 20), which sends
 * the user looking for a missing folder; the nearest existing parent's own write check gives the
 * real cause (EROFS, EACCES, EPERM), thrown instead (as LocalStore does for its own folder).
 */
import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { dirname } from "node:path";

/** Makes `dir` and the folders on its way; resolves to the first folder it made, as mkdir does. */
export async function makeFolder(dir: string): Promise<string | undefined> {
  try {
    return await mkdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    for (let parent = dirname(dir); ; parent = dirname(parent)) {
      try {
        await access(parent, constants.W_OK);
        throw error; // writable: ENOENT it was (the folder went away meanwhile)
      } catch (denied) {
        if (denied === error) throw error;
        if ((denied as NodeJS.ErrnoException).code !== "ENOENT") throw denied;
        if (dirname(parent) === parent) throw error;
      }
    }
  }
}
