/**
 * The floor of a warm run under Cairn's tracking contract: the requests any orchestrator must
 * make to MLflow when a flow run is a run and every task, cached or not, is a child run of it
 * (issues #3 and #4), and nothing else. No cache, no checks, no graph, params only for the tasks
 * that run (FRESH below): a bare Node
 * process with node:http.
 *
 *   experiments/get-by-name                      open the experiment (created on first use)
 *   runs/create                                  the flow run
 *   runs/create + runs/update per task           a FINISHED child run (MLflow's REST API has no
 *                                                call that creates a run finished, nor several runs)
 *   runs/update                                  end the flow run
 *
 * Child runs go three at a time, as Cairn records hits. Run by bench/multistep/run.ts:
 *
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 node bench/multistep/floor.mjs EXPERIMENT TASKS [FRESH WORK_MS] [content]
 *
 * `content` (bench/peers/run.ts's second floor row) sends what Cairn's record holds instead of
 * the least a run can be: a hit's 16 tags (source, user, commit, host, owner, flow, task, node,
 * kind, status, its source run and key), a run that ran its 14 tags at creation, its 4 inputs
 * as params and 3 tags in the log-batch, and its two small files (the outputs manifest in the
 * run, the cache index entry in the experiment), as Cairn does for the peers' flow: the same
 * requests' content, with no engine, cache or check around them. The flow run carries its record
 * too: its 8 tags at creation, its params in one log-batch and its graph (`cairn/graph.json`,
 * `cairn/graph.mmd`) beside it, and at its end its outputs (`outputs.json`, the numbers as
 * metrics in one log-batch) and its report page (`cairn/report.html`) before the update; file
 * sizes per task as Cairn's for examples/multistep (graph 460 + 48 bytes a task, the page 20 KB +
 * 0.5 KB a task). Cairn's reads and checks (the abandoned-runs search, the hits' source runs, the
 * report's `runs/get`) are not part of the record and are left out.
 *
 * With FRESH, that many of the TASKS are tasks that run (a cold run's, a changed input's), as
 * bench/peers/run.ts asks for its cold and changed phases: each burns WORK_MS of CPU on this
 * thread (as a function task runs on Cairn's) and is recorded with the fewest requests a run
 * that ran allows, its tags in the create, its params and metrics in one log-batch, then its end:
 *
 *   runs/create + runs/log-batch + runs/update   per task that runs, eight at a time (`-c 8`),
 *                                                beside the hits' three
 */
import http from "node:http";

const [experimentName = "floor", taskCount = "7", freshCount = "0", workMs = "0", mode = "least"] = process.argv.slice(2);
const content = mode === "content";
const fresh = Math.min(Number(freshCount), Number(taskCount));
const base = new URL(process.env.MLFLOW_TRACKING_URI ?? "http://127.0.0.1:5000");
const agent = new http.Agent({ keepAlive: true });
// As Cairn's client does (CAIRN_MLFLOW_CONNECTION_REQUESTS): every 20th request closes its
// connection, so that a server's workers share the connections opened over the run.
let sent = 0;

function call(method, path, body, api = "mlflow") {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const close = ++sent % 20 === 0 ? { connection: "close" } : {};
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: `/api/2.0/${api}/${path}`,
        agent,
        headers: { ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}), ...close },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => (res.statusCode === 200 || method === "GET" ? resolve(text ? JSON.parse(text) : {}) : reject(new Error(`${path}: ${res.statusCode} ${text}`))));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const found = await call("GET", `experiments/get-by-name?experiment_name=${encodeURIComponent(experimentName)}`);
const experimentId = found.experiment?.experiment_id ?? (await call("POST", "experiments/create", { name: experimentName })).experiment_id;
const flowTags = [
  ["mlflow.source.type", "LOCAL"],
  ["mlflow.source.name", "/work/main/bench/multistep/cairn-flow.ts"],
  ["mlflow.user", "root"],
  ["mlflow.source.git.commit", "0".repeat(40)],
  ["cairn.host", "vm"],
  ["cairn.flow", "floor"],
  ["cairn.kind", "flow"],
  ["cairn.owner", `vm:${process.pid}:t4792296`],
].map(([key, value]) => ({ key, value }));
const createdFlow = (await call("POST", "runs/create", { experiment_id: experimentId, run_name: "flow", start_time: Date.now(), ...(content ? { tags: flowTags } : {}) })).run;
const flowRun = createdFlow.info.run_id;
const tasks = Number(taskCount);
const flowStart = content
  ? Promise.all([
      call("POST", "runs/log-batch", { run_id: flowRun, params: ["dataset", "testSize", "c", "trees", "seed"].map((key, i) => ({ key, value: String(i * 7) })), metrics: [], tags: [] }),
      call("PUT", `artifacts/${createdFlow.info.artifact_uri.replace(/^mlflow-artifacts:\//, "")}/cairn/graph.json`, "g".repeat(460 * tasks), "mlflow-artifacts"),
      call("PUT", `artifacts/${createdFlow.info.artifact_uri.replace(/^mlflow-artifacts:\//, "")}/cairn/graph.mmd`, "m".repeat(48 * tasks), "mlflow-artifacts"),
    ])
  : undefined;

// `content`: what Cairn's record of the peers' flow holds (values of the same sizes).
const hex = (n, seed) => Array.from({ length: n }, (_, i) => ((seed * 31 + i * 7) % 16).toString(16)).join("");
const common = (task) => ({
  "mlflow.source.type": "LOCAL",
  "mlflow.source.name": "/work/main/bench/peers/cairn-flow.ts",
  "mlflow.user": "root",
  "mlflow.source.git.commit": hex(40, 1),
  "cairn.owner": `vm:${process.pid}:t4792296`,
  "cairn.host": "vm",
  "cairn.flow": "peers-cache",
  "cairn.task": "work",
  "cairn.node_id": `work-${task}`,
  "cairn.task_kind": "function",
  "mlflow.parentRunId": flowRun,
});
const asList = (tags) => Object.entries(tags).map(([key, value]) => ({ key, value }));
const indexFolder = content ? (found.experiment ?? (await call("GET", `experiments/get?experiment_id=${experimentId}`)).experiment).artifact_location.replace(/^mlflow-artifacts:\//, "") : "";
const put = (artifactUri, path, text) => call("PUT", `artifacts/${artifactUri.replace(/^mlflow-artifacts:\//, "")}/${path}`, text, "mlflow-artifacts");

let nextFresh = 0;
async function runner() {
  while (nextFresh < fresh) {
    const task = nextFresh++;
    const tags = content
      ? asList({ ...common(task), "cairn.queued_at": String(Date.now()), "cairn.ran_because": "miss" })
      : [
          { key: "mlflow.parentRunId", value: flowRun },
          { key: "cairn.task", value: "work" },
        ];
    const created = await call("POST", "runs/create", { experiment_id: experimentId, run_name: `task-${task}`, start_time: Date.now(), tags });
    const runId = created.run.info.run_id;
    const end = performance.now() + Number(workMs);
    while (performance.now() < end);
    const key = hex(64, task);
    await Promise.all([
      call("POST", "runs/log-batch", {
        run_id: runId,
        ...(content
          ? {
              params: asList({ id: `w0_1_${task % 10}`, l: "1", seed: "0", deps: `[${task},${task * 7}]` }),
              tags: asList({ "cairn.cache_key": key, "cairn.attempts": "1", "cairn.status": "succeeded" }),
            }
          : {
              params: [{ key: "id", value: `task-${task}` }],
              metrics: [{ key: "v", value: task, timestamp: Date.now(), step: 0 }],
              tags: [{ key: "cairn.status", value: "succeeded" }],
            }),
      }),
      content ? put(created.run.info.artifact_uri, "cairn/outputs.json", JSON.stringify({ values: { v: task }, artifacts: [], pad: "x".repeat(1100) })) : undefined,
    ]);
    await call("POST", "runs/update", { run_id: runId, status: "FINISHED", end_time: Date.now() });
    if (content) await put(`mlflow-artifacts:/${indexFolder}`, `cairn-index/${key}.json`, JSON.stringify({ key, sourceRunId: runId, values: { v: task }, pad: "x".repeat(1300) }));
  }
}

let next = fresh;
async function recorder() {
  while (next < Number(taskCount)) {
    const task = next++;
    const tags = content
      ? asList({ ...common(task), "cairn.status": "cached", "cairn.cached_from": hex(32, task), "cairn.cached_from.name": `work-${task}`, "cairn.cache_hit_key": hex(64, task) })
      : [
          { key: "mlflow.parentRunId", value: flowRun },
          { key: "cairn.cached_from", value: flowRun },
        ];
    const created = await call("POST", "runs/create", { experiment_id: experimentId, run_name: `task-${task}`, start_time: Date.now(), tags });
    await call("POST", "runs/update", { run_id: created.run.info.run_id, status: "FINISHED", end_time: Date.now() });
  }
}
await Promise.all([...Array.from({ length: 8 }, runner), recorder(), recorder(), recorder(), flowStart]);
if (content) {
  await Promise.all([
    put(createdFlow.info.artifact_uri, "outputs.json", JSON.stringify({ best: "logreg", rocAuc: 0.99 })),
    call("POST", "runs/log-batch", { run_id: flowRun, params: [], tags: [], metrics: [{ key: "rocAuc", value: 0.99, timestamp: Date.now(), step: 0 }] }),
  ]);
  await put(createdFlow.info.artifact_uri, "cairn/report.html", "r".repeat(20_000 + 500 * tasks));
}
await call("POST", "runs/update", { run_id: flowRun, status: "FINISHED", end_time: Date.now() });
agent.destroy();
