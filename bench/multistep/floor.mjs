/**
 * The floor of a warm run under Cairn's tracking contract: the requests any orchestrator must
 * make to MLflow when a flow run is a run and every task, cached or not, is a child run of it
 * (issues #3 and #4), and nothing else. No cache, no checks, no params, no graph: a bare Node
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
 *   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 node bench/multistep/floor.mjs EXPERIMENT TASKS
 */
import http from "node:http";

const [experimentName = "floor", taskCount = "7"] = process.argv.slice(2);
const base = new URL(process.env.MLFLOW_TRACKING_URI ?? "http://127.0.0.1:5000");
const agent = new http.Agent({ keepAlive: true });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: `/api/2.0/mlflow/${path}`,
        agent,
        headers: data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {},
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

let next = 0;
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
await Promise.all([recorder(), recorder(), recorder()]);
await call("POST", "runs/update", { run_id: flowRun, status: "FINISHED", end_time: Date.now() });
agent.destroy();
