/**
 * loadFlow's words for an import that failed for a reason outside the flow's code.
 */
import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../../..");

/** A uid with no passwd entry, when this test can switch to one (root, with util-linux's setpriv): root reads every folder. */
const uidWithoutPasswd = ((): number | undefined => {
  if (process.getuid?.() !== 0 || spawnSync("setpriv", ["--version"]).status !== 0) return undefined;
  for (let uid = 54321; uid < 54400; uid++) if (spawnSync("getent", ["passwd", String(uid)]).status === 2) return uid;
  return undefined;
})();
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

  it.skipIf(uidWithoutPasswd === undefined)("a flow file behind a folder this user may not enter is said so (EACCES), not that it does not exist", async () => {
    const locked = join(dir, "locked");
    await mkdir(locked, { mode: 0o700 }); // root's alone
    await writeFile(join(locked, "flow.ts"), "export default 1;\n");
    await chmod(dir, 0o755);
    const file = join(locked, "flow.ts");
    const code = `
      const { loadFlow } = await import(${JSON.stringify(join(import.meta.dirname, "load-flow.ts"))});
      await loadFlow(${JSON.stringify(file)}).catch((error) => console.log(error.name + ": " + error.message));
    `;
    const uid = String(uidWithoutPasswd);
    const child = spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "--import", "tsx", "--input-type=module", "-e", code], {
      cwd: repo,
      encoding: "utf8",
    });
    await rm(join(tmpdir(), `tsx-${uid}`), { recursive: true, force: true });
    expect(child.stdout.trim()).toBe(
      `FlowFileError: Cannot look at flow file ${file}: EACCES: permission denied, stat '${file}'. A folder on its way cannot be entered by this user: check its permissions (ls -ld each folder).`,
    );
  });
});

describe("commonJsScope", () => {
  it("gives the format the code fingerprints are made with: CommonJS under a package.json that is not JSON, with why", async () => {
    const { commonJsScope } = await import("./load-flow.ts");
    const { moduleFormatOf } = await import("@cairn/dsl");
    const root = await mkdtemp(join(tmpdir(), "cairn-cjs-scope-"));
    try {
      const cases: Record<string, string> = { esm: `{ "type": "module" }`, cjs: `{ "name": "x" }`, broken: `{ "type": "module",` };
      for (const [name, manifest] of Object.entries(cases)) {
        await mkdir(join(root, name));
        await writeFile(join(root, name, "package.json"), manifest);
        const flow = join(root, name, "flow.ts");
        expect(commonJsScope(flow) !== undefined, name).toBe(moduleFormatOf(flow).format === "cjs");
      }
      expect(commonJsScope(join(root, "broken/flow.ts"))).toEqual({ why: `${join(root, "broken/package.json")} is not valid JSON (Node refuses to load a module under it; CommonJS is its default)` });
      expect(commonJsScope(join(root, "esm/flow.ts"))).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
