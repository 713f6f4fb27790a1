/**
 * The project's root that paths given where a task is declared are named from: real folders on
 * disk, under the system's temp folder (no `.git` above it).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "./declared-path.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-project-root-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A project under `dir/name` with these files (a name ending in `/` is a folder); returns its path. */
async function project(name: string, files: string[]): Promise<string> {
  const root = join(dir, name);
  for (const file of files) {
    await mkdir(join(root, file.endsWith("/") ? file : join(file, "..")), { recursive: true });
    if (!file.endsWith("/")) await writeFile(join(root, file), "{}\n");
  }
  return root;
}

describe("projectRoot", () => {
  it("is the nearest folder holding .git, also when a lockfile or package.json is nearer", async () => {
    const root = await project("git", [".git/", "package-lock.json", "packages/app/package.json", "packages/app/pnpm-lock.yaml", "packages/app/lib/"]);
    expect(projectRoot(join(root, "packages/app/lib"))).toBe(root);
  });

  it("without .git (git archive, a Docker COPY): the nearest folder holding a lockfile, above a member's package.json", async () => {
    for (const lockfile of ["pnpm-lock.yaml", "package-lock.json", "yarn.lock", "bun.lockb", "bun.lock"]) {
      const root = await project(`lock-${lockfile}`, [lockfile, "package.json", "packages/app/package.json", "packages/app/lib/"]);
      expect(projectRoot(join(root, "packages/app/lib"))).toBe(root);
    }
  });

  it("without .git or a lockfile: the nearest folder holding a package.json; without any, the folder itself", async () => {
    const root = await project("manifest", ["package.json", "lib/deep/"]);
    expect(projectRoot(join(root, "lib/deep"))).toBe(root);
    const bare = await project("bare", ["lib/"]);
    expect(projectRoot(join(bare, "lib"))).toBe(join(bare, "lib"));
  });
});
