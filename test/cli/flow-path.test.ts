/**
 * A flow file named through a symlinked folder and `..` (`/x/lnk/../../../proj/flow.ts`): the
 * shell follows the link before `..`, so `ls` finds the file; `cairn` looks where the OS does
 * when the path read as text names no file.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repo } from "../cache/helpers.ts";
import { cairn } from "./helpers.ts";

let base: string;

beforeAll(async () => {
  // Inside the workspace, so that `cairn-dag` resolves as it does for the examples.
  base = await mkdtemp(join(repo, "test", ".x-flow-path-"));
  mkdirSync(join(base, "proj"));
  mkdirSync(join(base, "real", "d1", "d2"), { recursive: true });
  mkdirSync(join(base, "x"));
  symlinkSync(join(base, "real", "d1", "d2"), join(base, "x", "lnk"));
  writeFileSync(
    join(base, "proj", "flow.ts"),
    `import { flow, task } from "cairn-dag";\nconst one = task("one").run(() => ({ v: 1 }));\nexport default flow("through-link").build(() => ({ v: one().v }));\n`,
  );
});

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

describe("a flow file named through a symlinked folder and ..", () => {
  it("is found where the OS finds it", async () => {
    // As text: base/x/lnk/../../.. is base's parent; as the OS goes: lnk is real/d1/d2, three up is base.
    const file = join(base, "x", "lnk") + "/../../../proj/flow.ts";
    const r = await cairn(["plan", file, "--root", join(base, ".cairn")]);
    expect(r.stderr).not.toContain("does not exist");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("one");
  });

  it("that names no file either way is said to be missing at the path as written", async () => {
    const file = join(base, "x", "lnk") + "/../../../proj/nope.ts";
    const r = await cairn(["plan", file, "--root", join(base, ".cairn")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Flow file ${file} does not exist (looked at ${join(base, "..", "proj", "nope.ts")})`);
  });
});
