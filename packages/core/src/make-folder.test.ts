/**
 * makeFolder on a read-only file system, where Node's recursive mkdir says ENOENT. No test can
 * mount one, so mkdir and access of node:fs/promises are made to answer as there, for the folders
 * under READ_ONLY alone; everything else is real.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { CancelledError } from "./errors.ts";

const READ_ONLY = join(tmpdir(), "cairn-read-only-fs");
vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  const under = (path: unknown) => String(path).startsWith(READ_ONLY);
  const failing = (code: string, text: string, call: string) => (path: unknown) =>
    Promise.reject(Object.assign(new Error(`${code}: ${text}, ${call} '${String(path)}'`), { code }));
  const mkdir = ((path, options) => (under(path) ? failing("ENOENT", "no such file or directory", "mkdir")(path) : fs.mkdir(path, options))) as typeof fs.mkdir;
  const access = ((path, mode) =>
    String(path) === READ_ONLY ? failing("EROFS", "read-only file system", "access")(path) : fs.access(path, mode)) as typeof fs.access;
  return { ...fs, default: { ...fs, mkdir, access }, mkdir, access };
});

const { makeFolder } = await import("./make-folder.ts");

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("makeFolder", () => {
  it("makes the folders on the way, and resolves to the first it made", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-make-folder-"));
    dirs.push(dir);
    expect(await makeFolder(join(dir, "a", "b"))).toBe(join(dir, "a"));
    expect((await stat(join(dir, "a", "b"))).isDirectory()).toBe(true);
    expect(await makeFolder(join(dir, "a", "b"))).toBeUndefined();
  });

  it("on a read-only file system says EROFS with the folder that cannot be written, not ENOENT", async () => {
    await expect(makeFolder(join(READ_ONLY, "artifacts", "run1"))).rejects.toMatchObject({
      code: "EROFS",
      message: `EROFS: read-only file system, access '${READ_ONLY}'`,
    });
  });

  it("keeps ENOENT when the folders on the way can be written to (one went away meanwhile)", async () => {
    // mkdir says ENOENT here too, but the nearest existing folder (the real tmpdir) is writable: ENOENT it stays.
    await expect(makeFolder(join(`${READ_ONLY}-gone`, "x"))).rejects.toMatchObject({ code: "ENOENT", message: expect.stringContaining("mkdir") });
  });
});

describe("CancelledError", () => {
  it("does not double the period of a reason that ends in one", () => {
    expect(new CancelledError(new Error("Cannot write x: EROFS: read-only file system.")).message).toBe("Cancelled: Cannot write x: EROFS: read-only file system.");
  });
});
