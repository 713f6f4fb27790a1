/**
 * An app tsc compiled as the coordinator of real workers: `node dist/app.js`, whose flow runs
 * with `queue` (as the README's "From an app" has it), and `cairn worker flow.ts` on the
 * TypeScript sources. The compiled tasks count as their sources (tsc wrote source maps), so the
 * worker takes them as the run's code (not handed back as other code), and a second run hits
 * the cache. Real processes: redis-server, an MLflow server, tsc, node and `cairn worker`.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { childEnv, repo, start, tmp } from "../cache/helpers.ts";
import { markers, startWorker, useQueueServers } from "./helpers.ts";

const servers = useQueueServers();

const FLOW = `import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { flow, task } from "cairn-dag";

// What tsc writes otherwise than esbuild: counted as the source all the same (typescript is installed).
enum Scale {
  Twice = 2,
}

async function mark(node: string): Promise<void> {
  await appendFile(join(process.env.MARKER_DIR!, \`\${node}.\${process.pid}\`), "x");
}

const double = task("double")
  .input<{ x: number }>()
  .run(async ({ x }) => {
    await mark("double");
    return { y: x * Scale.Twice };
  });

const add = task("add")
  .input<{ a: number; b: number }>()
  .run(async ({ a, b }) => {
    await mark("add");
    return { sum: a + b };
  });

export default flow("compiled-app-queue").build(() => {
  const d = double({ x: 21 });
  return { sum: add({ a: d.y, b: 1 }).sum };
});
`;

const APP = `import demo from "./flow.ts";
const run = await demo.run({ queue: process.env.QUEUE_URL! });
const result = await run.wait();
const statuses = Object.fromEntries(Object.entries(result.tasks).map(([id, t]) => [id, t.status]));
console.log(JSON.stringify({ status: result.status, statuses, outputs: result.status === "succeeded" ? await run.outputs() : null, error: result.error?.message }));
`;

/** A project as `cairn init` makes one, its cairn-dag Cairn's own bundle (what plain Node loads), compiled by tsc. */
async function compiledProject(): Promise<string> {
  const dir = await tmp("cairn-compiled-app-");
  const { ensureBundle } = (await import(pathToFileURL(join(repo, "packages/cli/bin/bundle.mjs")).href)) as { ensureBundle(): Promise<{ files: Record<string, string> }> };
  const bundle = await ensureBundle();
  await mkdir(join(dir, "node_modules/cairn-dag"), { recursive: true });
  await writeFile(join(dir, "node_modules/cairn-dag/package.json"), JSON.stringify({ name: "cairn-dag", type: "module", exports: { ".": "./index.js" } }));
  await writeFile(join(dir, "node_modules/cairn-dag/index.js"), `export * from ${JSON.stringify(bundle.files.cairn)};\n`);
  await symlink(join(repo, "node_modules/typescript"), join(dir, "node_modules/typescript"));
  await writeFile(join(dir, "package.json"), JSON.stringify({ name: "app", type: "module" }));
  const tsconfig = JSON.parse(await readFile(join(repo, "packages/cli/templates/tsconfig.json"), "utf8")) as { compilerOptions: Record<string, unknown> };
  // The bundle has no types beside it: tsc emits without checking them.
  Object.assign(tsconfig.compilerOptions, { types: [], noCheck: true });
  await writeFile(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
  await writeFile(join(dir, "flow.ts"), FLOW);
  await writeFile(join(dir, "app.ts"), APP);
  execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  return dir;
}

describe("an app compiled by tsc as the coordinator of workers on the TypeScript sources", () => {
  it("the worker takes its tasks as the run's code, and a second run of the app hits the cache", async () => {
    const dir = await compiledProject();
    const markerDir = await tmp("cairn-compiled-app-marks-");
    const env = { MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "compiled-app-queue", MARKER_DIR: markerDir, QUEUE_URL: servers.redis.url };
    const worker = await startWorker(join(dir, "flow.ts"), servers.redis.url, ["--root", await tmp("cairn-worker-root-")], env);
    servers.workers.push(worker);
    const app = async () => {
      const r = await start(process.execPath, ["dist/app.js"], { cwd: dir, env: childEnv({ ...env, CAIRN_QUEUE_STALE_GRACE_MS: "3000" }) }).done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain("CairnCompiledSourceWarning");
      return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { status: string; statuses: Record<string, string>; outputs: unknown; error?: string };
    };

    const first = await app();
    expect(first).toMatchObject({ status: "succeeded", statuses: { double: "succeeded", add: "succeeded" }, outputs: { sum: 43 } });
    // Run by the worker, once each: not handed back as other code, not run by the app.
    expect(await markers(markerDir)).toEqual({ double: [worker.child.pid], add: [worker.child.pid] });
    expect(worker.log()).not.toMatch(/differs|other code|refus/i);

    const second = await app();
    expect(second).toMatchObject({ status: "succeeded", statuses: { double: "cached", add: "cached" }, outputs: { sum: 43 } });
    expect(await markers(markerDir)).toEqual({ double: [worker.child.pid], add: [worker.child.pid] });
  }, 240_000);
});
