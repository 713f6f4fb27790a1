/**
 * The multistep workflow (examples/multistep: download -> process -> train x2 -> evaluate x2)
 * orchestrated three ways against one real MLflow server, cold then warm, on the same scripts:
 *
 * - MLflow: bench/multistep/main.py, mlflow.projects.run per entry point with the
 *   `_already_ran` scan of MLflow's multistep example (reuse of an earlier matching run);
 * - Cairn, script() tasks: bench/multistep/cairn-flow.ts, run as its users run it: `cairn run`;
 * - Cairn, mlflowProject() tasks: the same flow with CAIRN_BENCH_STEPS=project (`mlflow run` per step);
 * - the floor: bench/multistep/floor.mjs, only the requests that record a flow run and one
 *   FINISHED child run per task (the least any orchestrator keeping that record can do).
 *
 * Each orchestrator gets its own experiment (and Cairn its own state folder), so its cold run
 * is cold. Cold runs once each; warm runs five rounds of one run each, medians reported. Times are wall-clock seconds of the whole process (interpreter start-up included);
 * "inside" is the orchestrator's own measure (main.py's workflow(), Cairn's flow duration).
 * Prints a markdown table.
 *
 *   pnpm bench:multistep            # or: tsx bench/multistep/run.ts [--no-project] [--latency MS]
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error: a JavaScript module without types
import { ensureBundle } from "../../packages/cli/bin/bundle.mjs";
import { startMlflowServer, venvDir, venvPython, workspaceRoot } from "../../packages/mlflow/test/mlflow-server.ts";
import { latencyProxy } from "../latency-proxy.ts";

const here = dirname(fileURLToPath(import.meta.url));
const withProject = !process.argv.includes("--no-project");
/** `--latency MS`: every orchestrator reaches the server through a proxy that holds each request MS ms (bench/latency-proxy.ts). */
const latencyArg = process.argv.indexOf("--latency");
const latencyMs = latencyArg > 0 ? Number(process.argv[latencyArg + 1]) : 0;
if (!(latencyMs >= 0)) throw new Error(`--latency expects milliseconds, got ${process.argv[latencyArg + 1]}`);
const cairnBin = join(workspaceRoot, "packages/cli/bin/cairn.mjs");

interface Measure {
  seconds: number;
  inside?: number;
  /** Tasks / steps that ran vs. were reused. */
  ran: number;
  reused: number;
  best?: string;
  rocAuc?: number;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ seconds: number; out: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-20_000)));
    child.once("error", reject);
    child.once("exit", (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code === 0) resolve({ seconds, out });
      else reject(new Error(`${command} ${args.join(" ")} exited with ${code}:\n${out.slice(-4000)}\n${err.slice(-4000)}`));
    });
  });
}

/** "47ms", "18.1s", "1m 11s" -> seconds. */
function parseDuration(text: string): number {
  let s = 0;
  for (const [, n, unit] of text.matchAll(/([\d.]+)\s*(ms|s|m|h)/g)) s += Number(n) * ({ ms: 0.001, s: 1, m: 60, h: 3600 } as Record<string, number>)[unit!]!;
  return s;
}

async function mlflowNative(uri: string, experiment: string): Promise<Measure> {
  const env = { MLFLOW_TRACKING_URI: uri, PATH: `${join(venvDir, "bin")}:${process.env.PATH}`, MLFLOW_DISABLE_TELEMETRY: "true" };
  const { seconds, out } = await run(venvPython, [join(here, "main.py"), "--experiment", experiment], env, workspaceRoot);
  const last = JSON.parse(out.trim().split("\n").at(-1)!) as { best: string; roc_auc: number; workflow_seconds: number };
  return {
    seconds,
    inside: last.workflow_seconds,
    ran: (out.match(/^Launching new run/gm) ?? []).length,
    reused: (out.match(/^Found existing run/gm) ?? []).length,
    best: last.best,
    rocAuc: last.roc_auc,
  };
}

async function cairn(uri: string, experiment: string, cwd: string, steps: "script" | "project"): Promise<Measure> {
  const env = { MLFLOW_TRACKING_URI: uri, MLFLOW_EXPERIMENT_NAME: experiment, CAIRN_BENCH_STEPS: steps, CAIRN_PYTHON: venvPython, NO_COLOR: "1" };
  const { seconds, out } = await run(process.execPath, [cairnBin, "run", join(here, "cairn-flow.ts")], env, cwd);
  const outputs = /^Outputs: (.*)$/m.exec(out);
  const parsed = outputs ? (JSON.parse(outputs[1]!) as { best: string; rocAuc: number }) : undefined;
  const flowLine = /Flow succeeded in (.+?), run/.exec(out);
  const rows = out.split("\n").filter((l) => /^(download|process|train-|evaluate-|pick)\S*\s+(succeeded|cached)\s/.test(l));
  return {
    seconds,
    ...(flowLine ? { inside: parseDuration(flowLine[1]!) } : {}),
    ran: rows.filter((l) => /\ssucceeded\s/.test(l)).length,
    reused: rows.filter((l) => /\scached\s/.test(l)).length,
    ...(parsed ? { best: parsed.best, rocAuc: parsed.rocAuc } : {}),
  };
}

/** Tasks of cairn-flow.ts: download, process, train x2, evaluate x2, pick. */
const FLOW_TASKS = 7;
const WARM_ROUNDS = 5;

async function floor(uri: string, experiment: string, mode: "least" | "content" = "least"): Promise<Measure> {
  const { seconds } = await run(process.execPath, [join(here, "floor.mjs"), experiment, String(FLOW_TASKS), "0", "0", mode], { MLFLOW_TRACKING_URI: uri }, workspaceRoot);
  return { seconds, ran: 0, reused: FLOW_TASKS };
}

const fmt = (n: number | undefined) => (n === undefined ? "-" : n.toFixed(2));
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

// Cairn's bundle is built at install (pnpm install); a source edit since then is rebuilt here, not in the timed runs.
await ensureBundle();
const mlflowServer = await startMlflowServer();
const proxy = latencyMs ? await latencyProxy(mlflowServer.uri, latencyMs) : undefined;
const server = { uri: proxy?.uri ?? mlflowServer.uri };
const dirs: string[] = [];
try {
  const stamp = Date.now().toString(36);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const orchestrators: Array<{ name: string; run: () => Promise<Measure> }> = [
    { name: "MLflow: main.py, mlflow.run + _already_ran", run: () => mlflowNative(server.uri, `bench-mlflow-${stamp}`) },
  ];
  const kinds: Array<["script" | "project", string]> = [["script", "Cairn: script() tasks"]];
  if (withProject) kinds.push(["project", "Cairn: mlflowProject() tasks (mlflow run)"]);
  for (const [steps, name] of kinds) {
    const cwd = await mkdtemp(join(tmpdir(), `cairn-bench-multistep-${steps}-`));
    dirs.push(cwd);
    orchestrators.push({ name, run: () => cairn(server.uri, `bench-cairn-${steps}-${stamp}`, cwd, steps) });
  }
  orchestrators.push({ name: `Floor: only the ${FLOW_TASKS + 1} runs' requests (no work, no cache)`, run: () => floor(server.uri, `bench-floor-${stamp}`) });
  orchestrators.push({ name: `Floor with Cairn's record content (tags, params, graph, outputs, report page)`, run: () => floor(server.uri, `bench-floor-content-${stamp}`, "content") });

  // Cold once each; then the warm runs in rounds, one of each orchestrator per round, so that
  // the machine's drift falls on all of them alike. Warm figures are medians.
  const results: Array<{ name: string; cold: Measure; warm: Measure; warmRange: [number, number] }> = [];
  for (const o of orchestrators) {
    log(`${o.name}: cold...`);
    results.push({ name: o.name, cold: await o.run(), warm: undefined!, warmRange: [0, 0] });
  }
  const warmRuns: Measure[][] = orchestrators.map(() => []);
  for (let round = 1; round <= WARM_ROUNDS; round++) {
    log(`warm round ${round}/${WARM_ROUNDS}...`);
    for (const [i, o] of orchestrators.entries()) warmRuns[i]!.push(await o.run());
  }
  for (const [i, runs] of warmRuns.entries()) {
    const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
    results[i]!.warm = sorted[sorted.length >> 1]!;
    results[i]!.warmRange = [sorted[0]!.seconds, sorted.at(-1)!.seconds];
  }

  const base = results[0]!;
  const lines = [
    `Multistep workflow (6 steps: download, process, train x2, evaluate x2; breast_cancer), one MLflow server, wall-clock seconds of the whole process:`,
    ``,
    `| orchestrator | cold (s) | warm (s), median of ${WARM_ROUNDS} [range] | cold inside (s) | warm inside (s) | cold vs MLflow | warm vs MLflow | warm reused | best (ROC AUC) |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |`,
    ...results.map((r) => {
      const isFloor = r.name.startsWith("Floor");
      return (
        `| ${r.name} | ${isFloor ? "-" : fmt(r.cold.seconds)} | ${fmt(r.warm.seconds)} [${fmt(r.warmRange[0])}–${fmt(r.warmRange[1])}] | ${fmt(r.cold.inside)} | ${fmt(r.warm.inside)} | ` +
        `${isFloor ? "-" : ratio(r.cold.seconds, base.cold.seconds)} | ${ratio(r.warm.seconds, base.warm.seconds)} | ${isFloor ? "-" : `${r.warm.reused}/${r.warm.reused + r.warm.ran}`} | ` +
        `${isFloor ? "-" : `${r.cold.best ?? "?"} (${r.cold.rocAuc?.toFixed(4) ?? "?"})`} |`
      );
    }),
    ``,
    `The floor is a bare Node process making only the requests MLflow needs to record a flow run with one FINISHED ` +
      `child run per task (bench/multistep/floor.mjs): no orchestrator that keeps that record can be faster on this server. ` +
      `The floor with Cairn's record content makes the requests of the record Cairn keeps (the runs' tags, the flow's params, ` +
      `graph, outputs and report page), still with no engine, cache or check: what Cairn adds beyond it is its own.`,
    ...(() => {
      const cairnRow = results.find((r) => r.name.startsWith("Cairn: script"));
      const floors = results.filter((r) => r.name.startsWith("Floor"));
      return cairnRow && floors.length === 2
        ? [``, `Cairn script() warm against the floor: ${ratio(cairnRow.warm.seconds, floors[0]!.warm.seconds)}; against the floor with its record's content: ${ratio(cairnRow.warm.seconds, floors[1]!.warm.seconds)}.`]
        : [];
    })(),
    ``,
    `Goals: Cairn cold <= 0.5× and warm <= 0.1× the MLflow orchestrator's time. ` +
      (latencyMs ? `Every request held ${latencyMs} ms by a proxy in front of the server (--latency). ` : ``) +
      `Machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(" / ")} (1 / 5 / 15 min) at the end.`,
  ];
  console.log(lines.join("\n"));
} finally {
  await proxy?.close();
  await mlflowServer.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}
