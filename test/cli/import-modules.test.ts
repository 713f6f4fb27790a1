/**
 * A tracker of a plug-in (`registerTrackerScheme` in a module the flow imports) served `run`,
 * but `cairn runs`, `show`, `report` and `cache clear` load no flow, so they refused its URI
 * with "Cairn talks to MLflow only over HTTP". `--import FILE` (every command) and `CAIRN_IMPORT`
 * load the registering module first; the refusal names the scheme and how to register it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairn, repo } from "./helpers.ts";

const made: string[] = [];
/** A folder inside the workspace, where a flow file resolves `cairn-dag` as the examples do. */
const tmp = async () => {
  const dir = await mkdtemp(join(repo, "test", ".x-import-modules-"));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

/** A project whose tracker is the embedded store under the `jsonfile://` scheme, registered by tracker.ts, which the flow imports. */
async function pluginProject(): Promise<{ cwd: string; env: NodeJS.ProcessEnv }> {
  const cwd = await tmp();
  await writeFile(
    join(cwd, "tracker.ts"),
    `import { fileURLToPath } from "node:url";
import { LocalStore, registerTrackerScheme } from "cairn-dag";
registerTrackerScheme(["jsonfile"], async (uri) => new LocalStore({ root: fileURLToPath(uri.replace(/^jsonfile:/, "file:")) }));
`,
  );
  await writeFile(
    join(cwd, "flow.ts"),
    `import "./tracker.ts";
import { flow, task } from "cairn-dag";
const t = task("t").run(() => ({ v: 1 }));
export default flow("plugged").build(() => ({ v: t().v }));
`,
  );
  return { cwd, env: { MLFLOW_TRACKING_URI: `jsonfile://${join(cwd, "records")}` } };
}

describe("--import and CAIRN_IMPORT", () => {
  it("load the module that registers a tracker's scheme, for the commands that load no flow", async () => {
    const { cwd, env } = await pluginProject();
    const ran = await cairn(["run", "flow.ts", "--json"], { cwd, env });
    expect(ran.code, ran.stderr).toBe(0);
    const runId = (JSON.parse(ran.stdout.trim().split("\n").at(-1)!) as { runId: string }).runId;

    const refused = await cairn(["runs"], { cwd, env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('no tracker is registered for the scheme "jsonfile://"');
    expect(refused.stderr).toContain('registerTrackerScheme(["jsonfile"], factory)');
    expect(refused.stderr).toContain("--import FILE, or CAIRN_IMPORT=FILE");
    expect(refused.stderr).not.toContain("only over HTTP");

    const listed = await cairn(["runs", "--import", "tracker.ts"], { cwd, env });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("plugged");
    const shown = await cairn(["show", runId, "--import=./tracker.ts"], { cwd, env });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("plugged");
    const byEnv = await cairn(["report", "latest", "--out", "r.html"], { cwd, env: { ...env, CAIRN_IMPORT: "./tracker.ts" } });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    expect(byEnv.stderr).not.toContain("is not a variable"); // CAIRN_IMPORT is one Cairn reads
    const cleared = await cairn(["cache", "clear", "--import", "tracker.ts"], { cwd, env });
    expect(cleared.code, cleared.stderr).toBe(0);
  }, 120_000);

  it("cairn run --json: the error event of an unregistered scheme carries the same advice as stderr (--import)", async () => {
    const { cwd, env } = await pluginProject();
    await writeFile(join(cwd, "bare.ts"), `import { flow, task } from "cairn-dag";\nconst t = task("t").run(() => ({ v: 1 }));\nexport default flow("bare").build(() => ({ v: t().v }));\n`);
    const r = await cairn(["run", "bare.ts", "--json"], { cwd, env });
    expect(r.code).toBe(2);
    const event = JSON.parse(r.stdout.trim()) as { type: string; error: { name: string; message: string } };
    expect(event).toMatchObject({ type: "error", error: { name: "UnsupportedTrackingUriError" } });
    expect(event.error.message).toContain("--import FILE, or CAIRN_IMPORT=FILE");
    expect(r.stderr).toContain("--import FILE, or CAIRN_IMPORT=FILE");
  }, 60_000);

  it("load a module the flow imports too only once, and refuse a module that is not there, naming where it was given", async () => {
    const { cwd, env } = await pluginProject();
    const twice = await cairn(["run", "flow.ts", "--import", "tracker.ts"], { cwd, env });
    expect(twice.code, twice.stderr).toBe(0);
    expect(twice.stderr).not.toContain("registered again");

    const missing = await cairn(["runs", "--import", "trakcer.ts"], { cwd, env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("Module trakcer.ts (given by --import) does not exist");
    const noFile = await cairn(["runs", "--import"], { cwd, env });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain("Expected a module file after --import, got nothing");
  }, 120_000);
});
