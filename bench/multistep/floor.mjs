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
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 node bench/multistep/floor.mjs EXPERIMENT TASKS [FRESH WORK_MS]
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

const [experimentName = "floor", taskCount = "7", freshCount = "0", workMs = "0"] = process.argv.slice(2);
const fresh = Math.min(Number(freshCount), Number(taskCount));
const base = new URL(process.env.MLFLOW_TRACKING_URI ?? "http://127.0.0.1:5000");
const agent = new http.Agent({ keepAlive: true });
// As Cairn's client does (CAIRN_MLFLOW_CONNECTION_REQUESTS): every 20th request closes its
// connection, so that a server's workers share the connections opened over the run.
let sent = 0;

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const close = ++sent % 20 === 0 ? { connection: "close" } : {};
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: `/api/2.0/mlflow/${path}`,
        agent,
        headers: { ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}), ...close },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => (res.statusCode === 200 || method === "GET" ? resolve(JSON.parse(text)) : reject(new Error(`${path}: ${res.statusCode} ${text}`))));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const found = await call("GET", `experiments/get-by-name?experiment_name=${encodeURIComponent(experimentName)}`);
const experimentId = found.experiment?.experiment_id ?? (await call("POST", "experiments/create", { name: experimentName })).experiment_id;
const flowRun = (await call("POST", "runs/create", { experiment_id: experimentId, run_name: "flow", start_time: Date.now() })).run.info.run_id;

let nextFresh = 0;
async function runner() {
  while (nextFresh < fresh) {
    const task = nextFresh++;
    const tags = [
      { key: "mlflow.parentRunId", value: flowRun },
      { key: "cairn.task", value: "work" },
    ];
    const created = await call("POST", "runs/create", { experiment_id: experimentId, run_name: `task-${task}`, start_time: Date.now(), tags });
    const runId = created.run.info.run_id;
    const end = performance.now() + Number(workMs);
    while (performance.now() < end);
    await call("POST", "runs/log-batch", {
      run_id: runId,
      params: [{ key: "id", value: `task-${task}` }],
      metrics: [{ key: "v", value: task, timestamp: Date.now(), step: 0 }],
      tags: [{ key: "cairn.status", value: "succeeded" }],
    });
    await call("POST", "runs/update", { run_id: runId, status: "FINISHED", end_time: Date.now() });
  }
}

let next = fresh;
async function recorder() {
  while (next < Number(taskCount)) {
    const task = next++;
    const tags = [
      { key: "mlflow.parentRunId", value: flowRun },
      { key: "cairn.cached_from", value: flowRun },
    ];
    const created = await call("POST", "runs/create", { experiment_id: experimentId, run_name: `task-${task}`, start_time: Date.now(), tags });
    await call("POST", "runs/update", { run_id: created.run.info.run_id, status: "FINISHED", end_time: Date.now() });
  }
}
await Promise.all([...Array.from({ length: 8 }, runner), recorder(), recorder(), recorder()]);
await call("POST", "runs/update", { run_id: flowRun, status: "FINISHED", end_time: Date.now() });
agent.destroy();
