/**
 * loadFlow's words for an import that failed for a reason outside the flow's code.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../../..");
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(repo, "test", ".load-flow-"));
  await writeFile(join(dir, "flow.ts"), `import { flow } from "cairn-dag";\nexport default flow("f").build(() => ({}));\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("loadFlow", () => {
  it("a process out of file descriptors (EMFILE) is named with ulimit -n, not blamed on the flow's module code", () => {
    // A real EMFILE: the child takes every descriptor its limit allows, then imports the flow.
    const code = `
      import { openSync } from "node:fs";
      const { loadFlow } = await import(${JSON.stringify(join(import.meta.dirname, "load-flow.ts"))});
      try { for (;;) openSync("/dev/null", "r"); } catch {}
      await loadFlow(${JSON.stringify(join(dir, "flow.ts"))}).then(() => console.log("loaded"), (error) => console.log(error.name + ": " + error.message));
    `;
    const child = spawnSync("sh", ["-c", `ulimit -n 256 && exec "${process.execPath}" --import tsx --input-type=module -e '${code.replaceAll("'", "'\\''")}'`], {
      cwd: repo,
      encoding: "utf8",
    });
    expect(child.stdout.trim()).toMatch(
      new RegExp(`^FlowFileError: Importing ${join(dir, "flow.ts")} failed: the process ran out of file descriptors \\(Error: EMFILE: too many open files, open '[^']+'\\)\\. Raise the limit \\(ulimit -n\\) and run again\\.$`),
    );
  });
});
