/**
 * A worker loads its flow file once: a script edited after that, before a task of it starts there,
 * runs as the new code under the key of the old (the coordinator, an app that loaded the flow
 * once too, made it). The worker says so, as a process that runs the flow itself does, and stores
 * no entry under that key. A real `cairn worker`, a real app through tsx, a real redis and MLflow.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repo, tmp, tsxScript } from "../cache/helpers.ts";
import { startWorker, useQueueServers } from "./helpers.ts";

const servers = useQueueServers();
const PYTHON = join(repo, ".venv/bin/python");

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { flow, script } from "cairn-dag";

const t = script("t", { file: "./ver.py", args: ["{n}"] }).input<{ n: number }>().output<{ score: number }>();

export default flow(process.env.FLOW_NAME ?? "ver").params<{ n: number }>().build(({ params }) => ({ score: t({ n: params.n }).score }));
`;
const STEP = (version: number) => `import sys\nimport cairn_task\ncairn_task.set_outputs({"score": ${version} * 10 + int(sys.argv[1])})\n`;

// Runs the flow with n = 1, edits the script, runs it with n = 2 twice: one flow loaded for all three.
const APP = `import "cairn-dag";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import f from "./flow.ts";

const runIt = async (n: number) => {
  const result = await (await f.run({ queue: process.env.QUEUE_URL!, root: process.env.APP_ROOT!, params: { n } })).wait();
  return { n, score: (result.outputs as { score?: number } | undefined)?.score, status: result.tasks.t?.status };
};
console.log(JSON.stringify(await runIt(1)));
writeFileSync(join(import.meta.dirname, "ver.py"), process.env.EDITED!);
console.log(JSON.stringify(await runIt(2)));
console.log(JSON.stringify(await runIt(2)));
`;

describe("a script edited after a worker loaded its flow", () => {
  it("the worker warns that it changed since the flow was loaded, and stores no entry under the old key", async () => {
    // Inside the workspace, where the flow file resolves cairn-dag.
    const dir = await mkdtemp(join(repo, "test", ".x-worker-edited-"));
    made.push(dir);
    await writeFile(join(dir, "flow.ts"), FLOW);
    await writeFile(join(dir, "app.ts"), APP);
    await writeFile(join(dir, "ver.py"), STEP(1));
    const env = { FLOW_NAME: "worker-edited", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "worker-edited", CAIRN_PYTHON: PYTHON };
    await mkdir(join(dir, "worker-root"));
    const worker = await startWorker(join(dir, "flow.ts"), servers.redis.url, ["--root", join(dir, "worker-root")], env);
    servers.workers.push(worker);

    const r = await tsxScript(join(dir, "app.ts"), [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), EDITED: STEP(2) }).done;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n").map((line) => JSON.parse(line) as { n: number; score: number; status: string });
    expect(lines).toEqual([
      { n: 1, score: 11, status: "succeeded" },
      { n: 2, score: 22, status: "succeeded" },
      // Not stored under the key of version 1: run again, not a hit.
      { n: 2, score: 22, status: "succeeded" },
    ]);
    expect(worker.log()).toMatch(/`[^`]*ver\.py` changed since the flow was loaded \(after its cache key read it\); its cache key still uses the old content, so its result is not cached\. Reload the flow to pick up the change\./);
  }, 180_000);
});
