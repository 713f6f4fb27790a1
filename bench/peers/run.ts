/**
 * `pnpm bench:peers`: the same workloads on Cairn, Prefect 3 and Apache Hamilton, side by side,
 * the engines taking turns within each round so that the machine's drift falls on all alike.
 * The peers run in a bench-only venv (.venv-peers, made by scripts/setup-peers-venv.sh; never
 * the test venv); Prefect on its own temporary server with local results, its home in a temp
 * folder. Workloads:
 *
 * - overhead: no-op tasks in a layered DAG (100 wide, two deps each), concurrency 8, time
 *   inside the process from the start of the run (Cairn: `flow.run()`, tracking and cache off;
 *   Hamilton: building the driver and `execute`; Prefect: the flow call, after a warm-up flow);
 * - makespan: sleeping tasks at concurrency 8, makespan / max(critical path, work / concurrency);
 * - cache: GROUPS × LAYERS × WIDTH tasks of WORK_MS ms of CPU, whole processes, cold, warm,
 *   then one group's input changed; each engine must run exactly the tasks it should (all,
 *   none, the changed group's), checked from the ids its tasks log;
 * - start: spawn to the first line of a one-task flow, whole process (`cairn run`);
 * - mlflow: the cache workload with Cairn tracking into a real `mlflow server` (one worker, and
 *   the server's default workers), against the same Prefect runs (its own tracking), and two
 *   floors on each server (bench/multistep/floor.mjs): the least requests that record the runs,
 *   and the same requests with what Cairn's record holds (its tags, params and small files).
 *
 * Prints markdown tables (figures as Cairn / peer from this run) and a JSON line last.
 *
 *   pnpm bench:peers [--quick] [--rounds N] [--only overhead,makespan,cache,mlflow,start]
 *                    [--shape GROUPS,LAYERS,WIDTH,WORK_MS]   # the caching workload's size
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a JavaScript module without types
import { ensureBundle } from "../../packages/cli/bin/bundle.mjs";
import { freePort, startMlflowServer, venvDir, workspaceRoot } from "../../packages/mlflow/test/mlflow-server.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const option = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const only = new Set((option("--only") ?? "overhead,makespan,cache,start,mlflow").split(","));
const sizes = quick
  ? { overhead: [1000], makespan: [200, 8, 50], cache: [2, 10, 10, 20], startRounds: 5, rounds: 1, cacheRounds: 1 }
  : { overhead: [1000, 10_000], makespan: [200, 8, 50], cache: [10, 10, 10, 20], startRounds: 9, rounds: 3, cacheRounds: 1 };
const rounds = Number(option("--rounds") ?? sizes.rounds);
const [groups, layers, width, workMs] = (option("--shape")?.split(",").map(Number) ?? sizes.cache) as [number, number, number, number];
const changedGroup = Math.min(3, groups - 1);

const here = import.meta.dirname;
const peersVenv = process.env.CAIRN_PEERS_VENV ?? join(workspaceRoot, ".venv-peers");
const peersPython = join(peersVenv, "bin", "python");
const tsx = join(workspaceRoot, "node_modules", ".bin", "tsx");
const cairnBin = join(workspaceRoot, "packages/cli/bin/cairn.mjs");
const log = (s: string) => process.stderr.write(`${s}\n`);

type Engine = "cairn" | "prefect" | "hamilton";
interface Ran {
  wholeMs: number;
  inside?: Record<string, number>;
  ranIds: string[];
}

const work = await mkdtemp(join(tmpdir(), "cairn-bench-peers-"));
const baseEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && !k.startsWith("PREFECT_") && k !== "NODE_OPTIONS")),
  MLFLOW_TRACKING_URI: "",
  NO_COLOR: "1",
  DO_NOT_TRACK: "1",
  PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: "true",
  PREFECT_SERVER_ANALYTICS_ENABLED: "false",
  PREFECT_LOGGING_LEVEL: "WARNING",
};
const prefectEnv = (home: string) => ({ PREFECT_HOME: home, PREFECT_LOCAL_STORAGE_PATH: join(home, "storage"), PREFECT_RESULTS_PERSIST_BY_DEFAULT: "true" });

let seq = 0;
/** Runs one whole process; returns its wall time, its last JSON line and the ids its tasks logged. */
async function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  const logFile = join(work, `ran-${++seq}.log`);
  const started = performance.now();
  const { out, err, code } = await new Promise<{ out: string; err: string; code: number | null }>((resolve, reject) => {
    const child: ChildProcess = spawn(command, args, { cwd: work, env: { ...baseEnv, ...env, PEERS_LOG: logFile }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-20_000)));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ out, err, code }));
  });
  const wholeMs = performance.now() - started;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${code}:\n${out.slice(-3000)}\n${err.slice(-3000)}`);
  const json = out.split("\n").filter((l) => l.startsWith("{")).at(-1);
  const ranIds = existsSync(logFile) ? readFileSync(logFile, "utf8").split("\n").filter(Boolean) : [];
  return { wholeMs, ...(json ? { inside: JSON.parse(json) as Record<string, number> } : {}), ranIds };
}

/** The machine's busy and total CPU time so far (jiffies, from /proc/stat's first line). */
function machineCpu(): { busy: number; total: number } {
  const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  const idle = n[3]! + n[4]!; // idle + iowait
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal: guest time is already in user and nice
  return { busy: total - idle, total };
}

/**
 * Waits until the machine is quiet (under 15 % busy over 2 s), at most 30 s: a stock
 * `mlflow server` answers /health while its job consumers are still starting, a few seconds
 * of both cores that would land on whichever run comes first.
 */
async function waitForQuiet(): Promise<void> {
  const started = Date.now();
  for (let before = machineCpu(); Date.now() - started < 30_000; ) {
    await new Promise((r) => setTimeout(r, 2000));
    const now = machineCpu();
    const busy = (now.busy - before.busy) / Math.max(1, now.total - before.total);
    before = now;
    if (busy < 0.15) break;
  }
  if (Date.now() - started > 3000) log(`(waited ${((Date.now() - started) / 1000).toFixed(0)} s for the machine to be quiet)`);
}

const peer = (engine: "prefect" | "hamilton", args: string[], env: NodeJS.ProcessEnv = {}) => runProcess(peersPython, [join(here, "peer.py"), engine, ...args], env);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const r2 = (n: number) => Math.round(n * 100) / 100;
const fmtS = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
const ratio = (a: number, b: number) => `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}`;
const sections: string[] = [];
const summary: Record<string, unknown> = { quick, rounds };

/** A stock `mlflow server` (its default workers), SQLite, proxied artifacts, in a temp folder. */
async function startStockMlflow(): Promise<{ uri: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-mlflow-stock-"));
  const port = await freePort();
  const uri = `http://127.0.0.1:${port}`;
  const child = spawn(join(venvDir, "bin", "mlflow"), ["server", "--host", "127.0.0.1", "--port", String(port), "--backend-store-uri", `sqlite:///${join(dir, "mlflow.db")}`, "--artifacts-destination", join(dir, "artifacts")], {
    cwd: dir,
    detached: true,
    stdio: "ignore",
    env: { ...process.env, MLFLOW_DISABLE_TELEMETRY: "true", DO_NOT_TRACK: "true" },
  });
  const kill = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  process.once("exit", () => kill("SIGKILL"));
  const stop = async () => {
    kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 1000));
    kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  };
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    if (child.exitCode !== null) throw new Error(`stock mlflow server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${uri}/health`, { signal: AbortSignal.timeout(2000) })).ok) return { uri, stop };
    } catch {
      // Not listening yet.
    }
  }
  await stop();
  throw new Error(`stock mlflow server did not answer on ${uri}/health`);
}

try {
  execFileSync("bash", [join(workspaceRoot, "scripts", "setup-peers-venv.sh")], { stdio: "inherit" });
  await ensureBundle();
  const versions = JSON.parse(
    execFileSync(peersPython, ["-c", "import json, prefect, hamilton.version as h; print(json.dumps({'prefect': prefect.__version__, 'hamilton': '.'.join(map(str, h.VERSION))}))"], { encoding: "utf8" }),
  ) as Record<string, string>;
  const mlflowVersion = execFileSync(join(venvDir, "bin", "python"), ["-c", "import mlflow; print(mlflow.__version__)"], { encoding: "utf8" }).trim();
  Object.assign(summary, { versions: { ...versions, mlflow: mlflowVersion, node: process.version } });
  const prefectHome = join(work, "prefect-home");
  const engines: Engine[] = ["cairn", "prefect", "hamilton"];

  // --- engine overhead and makespan: inside the process -------------------------------------
  const inProcess = async (workload: string, args: string[]) => {
    const times: Record<Engine, number[]> = { cairn: [], prefect: [], hamilton: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const engine of engines) {
        log(`${workload} ${args.join(" ")}: ${engine}, round ${round}/${rounds}...`);
        const ran = engine === "cairn" ? await runProcess(tsx, [join(here, "cairn.ts"), workload, ...args], {}) : await peer(engine, [workload, ...args], prefectEnv(prefectHome));
        times[engine].push(Number(ran.inside!.insideMs));
      }
    }
    return Object.fromEntries(engines.map((e) => [e, median(times[e])])) as Record<Engine, number>;
  };
  if (only.has("overhead")) {
    const lines = [`| no-op tasks | Cairn µs/task | Prefect µs/task | Hamilton µs/task | Cairn/Prefect | Cairn/Hamilton |`, `| ---: | ---: | ---: | ---: | ---: | ---: |`];
    for (const n of sizes.overhead) {
      const t = await inProcess("overhead", [String(n)]);
      const us = (e: Engine) => (t[e] * 1000) / n;
      lines.push(`| ${n.toLocaleString("en")} | ${us("cairn").toFixed(0)} | ${us("prefect").toFixed(0)} | ${us("hamilton").toFixed(0)} | ${ratio(t.cairn, t.prefect)} | ${ratio(t.cairn, t.hamilton)} |`);
      summary[`overhead${n}UsPerTask`] = Object.fromEntries(engines.map((e) => [e, r2(us(e))]));
    }
    sections.push(`Engine overhead (no-op tasks, layered 100 wide, concurrency 8; inside the process, median of ${rounds}):\n\n${lines.join("\n")}`);
  }
  if (only.has("makespan")) {
    const [n, conc, ms] = sizes.makespan as [number, number, number];
    const t = await inProcess("makespan", sizes.makespan.map(String));
    const bound = Math.max(10 * ms, (n * ms) / conc);
    const m = (e: Engine) => t[e] / bound;
    summary.makespanOverBound = Object.fromEntries(engines.map((e) => [e, Math.round(m(e) * 1000) / 1000]));
    sections.push(
      `Concurrency (${n} × ${ms} ms sleeps, 10 layers, concurrency ${conc}; makespan / lower bound ${bound} ms, median of ${rounds}):\n\n` +
        `| Cairn | Prefect | Hamilton | Cairn/Prefect | Cairn/Hamilton |\n| ---: | ---: | ---: | ---: | ---: |\n` +
        `| ${m("cairn").toFixed(3)} | ${m("prefect").toFixed(3)} | ${m("hamilton").toFixed(3)} | ${ratio(m("cairn"), m("prefect"))} | ${ratio(m("cairn"), m("hamilton"))} |`,
    );
  }

  // --- caching, and caching with MLflow on: whole processes ----------------------------------
  if (only.has("cache") || only.has("mlflow")) {
    const oneWorker = only.has("mlflow") ? await startMlflowServer() : undefined;
    const stock = only.has("mlflow") ? await startStockMlflow() : undefined;
    try {
      const shape = `${groups},${layers},${width},${workMs}`;
      const stamp = Date.now().toString(36);
      const all = Array.from({ length: groups * layers * width }, (_, i) => `w${Math.floor(i / (layers * width))}_${Math.floor(i / width) % layers}_${i % width}`);
      const expected = { cold: all, warm: [] as string[], changed: all.filter((id) => id.startsWith(`w${changedGroup}_`)) };
      type Variant = { name: string; floor?: boolean; content?: boolean; run: (state: string, phase: keyof typeof expected, round: number) => Promise<Ran> };
      // The floor: only the requests that record a flow run and one FINISHED run per task, hits
      // included; the tasks that run in a phase (cold: all, changed: a group) do their work too
      // and are recorded as runs that ran (create, log-batch, update), the fewest MLflow allows.
      // The content floor: the same requests carrying what Cairn's record holds (its tags, params
      // and two small files a task that runs), to tell the record's cost from the engine's.
      const floorRun = (uri: string, label: string, mode = "least") => (_: string, phase: keyof typeof expected, round: number) =>
        runProcess(
          process.execPath,
          [join(here, "..", "multistep", "floor.mjs"), `peers-floor-${label}-${stamp}-${round}-${phase}`, String(round ? all.length : 20), String(round ? expected[phase].length : 0), String(workMs), mode],
          { MLFLOW_TRACKING_URI: uri },
        );
      const cairnRun = (env: NodeJS.ProcessEnv) => (state: string, phase: keyof typeof expected) =>
        runProcess(process.execPath, [cairnBin, "run", join(here, "cairn-flow.ts"), "-c", "8", "--root", state, ...(phase === "changed" ? ["-p", `g${changedGroup}=1`] : [])], { CAIRN_PEERS_SHAPE: shape, ...env });
      const variants: Variant[] = [];
      if (only.has("cache")) variants.push({ name: "Cairn, embedded store", run: cairnRun({}) });
      if (oneWorker) variants.push({ name: "Cairn, MLflow (one-worker server)", run: (s, p, r) => cairnRun({ MLFLOW_TRACKING_URI: oneWorker.uri, MLFLOW_EXPERIMENT_NAME: `peers-1w-${stamp}-${r}` })(s, p) });
      if (oneWorker) variants.push({ name: "Floor: the record's requests only (one-worker server)", floor: true, run: floorRun(oneWorker.uri, "1w") });
      if (oneWorker) variants.push({ name: "Floor with Cairn's record content (one-worker server)", floor: true, content: true, run: floorRun(oneWorker.uri, "1w-content", "content") });
      if (stock) variants.push({ name: "Cairn, MLflow (stock server, default workers)", run: (s, p, r) => cairnRun({ MLFLOW_TRACKING_URI: stock.uri, MLFLOW_EXPERIMENT_NAME: `peers-stock-${stamp}-${r}` })(s, p) });
      if (stock) variants.push({ name: "Floor: the record's requests only (stock server)", floor: true, run: floorRun(stock.uri, "stock") });
      if (stock) variants.push({ name: "Floor with Cairn's record content (stock server)", floor: true, content: true, run: floorRun(stock.uri, "stock-content", "content") });
      variants.push({ name: `Prefect ${versions.prefect} (INPUTS + TASK_SOURCE, local results, its own temporary server)`, run: (s, p) => peer("prefect", ["cache", ...shape.split(","), String(p === "changed" ? changedGroup : -1)], prefectEnv(join(s, "prefect"))) });
      if (only.has("cache")) variants.push({ name: `Hamilton ${versions.hamilton} (.with_cache(), sequential driver)`, run: (s, p) => peer("hamilton", ["cache", ...shape.split(","), String(p === "changed" ? changedGroup : -1)], { PEERS_STATE: s }) });

      // A server's workers answer slowly at first: warm each up with a small floor run, not timed.
      for (const server of [oneWorker, stock]) if (server) await floorRun(server.uri, "warm-up")("", "cold", 0);
      const phases = ["cold", "warm", "changed"] as const;
      const times = variants.map(() => Object.fromEntries(phases.map((p) => [p, [] as number[]])) as Record<(typeof phases)[number], number[]>);
      const checks: string[] = [];
      for (let round = 1; round <= sizes.cacheRounds; round++) {
        const states = await Promise.all(variants.map(async (_, i) => {
          const s = join(work, `cache-${round}-${i}`);
          await mkdir(s, { recursive: true });
          return s;
        }));
        for (const phase of phases) {
          for (const [i, v] of variants.entries()) {
            log(`cache ${shape} ${phase}: ${v.name}, round ${round}/${sizes.cacheRounds}...`);
            await waitForQuiet(); // no run pays for the one before it (a server still starting, a peer's server ending)
            const ran = await v.run(states[i]!, phase, round);
            times[i]![phase].push(ran.wholeMs);
            const want = new Set(expected[phase]);
            const got = new Set(ran.ranIds);
            const extra = [...got].filter((x) => !want.has(x)).length;
            const missing = [...want].filter((x) => !got.has(x)).length;
            const twice = ran.ranIds.length - got.size;
            if (!v.floor && (extra || missing || twice)) checks.push(`${v.name}, ${phase}: ${missing} tasks that should have run did not, ${extra} ran that should not have, ${twice} ran twice`);
          }
        }
      }
      const prefectIndex = variants.findIndex((v) => v.name.startsWith("Prefect"));
      const med = (i: number, p: (typeof phases)[number]) => median(times[i]![p]);
      // Against the floor (issue 16's floor row): the floor's own time, the requests alone.
      const floorFor = (name: string, content = false) => variants.findIndex((v) => v.floor && !v.content === !content && name.includes(v.name.includes("one-worker") ? "one-worker" : "stock"));
      const floorLines = variants.flatMap((v, i) => {
        if (!v.name.startsWith("Cairn, MLflow") || floorFor(v.name) < 0) return [];
        const content = floorFor(v.name, true);
        const against = (f: number) => phases.map((p) => (f >= 0 ? ratio(med(i, p), med(f, p)) : "")).join(" | ");
        return [`| ${v.name} | ${against(floorFor(v.name))} | ${against(content)} |`];
      });
      const rows = variants.map((v, i) => {
        const cells = phases.map((p) => `${fmtS(med(i, p))} s`);
        const vsPrefect = v.name.startsWith("Cairn") ? phases.map((p) => `**${ratio(med(i, p), med(prefectIndex, p))}**`) : phases.map(() => "");
        return `| ${v.name} | ${cells.join(" | ")} | ${vsPrefect.join(" | ")} |`;
      });
      const hamiltonIndex = variants.findIndex((v) => v.name.startsWith("Hamilton"));
      const cairnIndex = variants.findIndex((v) => v.name === "Cairn, embedded store");
      summary.cache = Object.fromEntries(variants.map((v, i) => [v.name, Object.fromEntries(phases.map((p) => [p, Math.round(med(i, p))]))]));
      summary.cacheChecks = checks.length ? checks : "every engine ran exactly the right tasks in every phase";
      sections.push(
        `Caching (${groups * layers * width} tasks of ${workMs} ms CPU: ${groups} groups × ${layers} layers × ${width}, concurrency 8; whole process, wall seconds; ` +
          `"changed": group ${changedGroup}'s input changed, ${layers * width} tasks re-run${sizes.cacheRounds > 1 ? `; median of ${sizes.cacheRounds}` : ""}):\n\n` +
          `| engine | cold | warm | one input changed | cold Cairn/Prefect | warm Cairn/Prefect | changed Cairn/Prefect |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n${rows.join("\n")}\n\n` +
          (cairnIndex >= 0 && hamiltonIndex >= 0 ? `Cairn (embedded store) / Hamilton: cold ${ratio(med(cairnIndex, "cold"), med(hamiltonIndex, "cold"))}, warm ${ratio(med(cairnIndex, "warm"), med(hamiltonIndex, "warm"))}, changed ${ratio(med(cairnIndex, "changed"), med(hamiltonIndex, "changed"))}.\n\n` : "") +
          (floorLines.length
            ? `Cairn with MLflow / the floor on the same server (bench/multistep/floor.mjs: the requests that record a flow run and one FINISHED run per task and nothing else, no cache, no checks: a hit is create + update, three at a time; a task that runs in the phase — cold all, changed group ${changedGroup}'s — burns its ${workMs} ms of CPU and is create + log-batch + update, eight at a time; every 20th request closes its connection, as Cairn's client does; the content floor sends the same requests with what Cairn's record holds: a hit's 16 tags, a run that ran its 14 tags, 4 params, 3 tags and two small files, the outputs manifest and the cache index entry):\n\n| engine | cold | warm | changed | cold / content floor | warm / content floor | changed / content floor |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n${floorLines.join("\n")}\n\n`
            : "") +
          `Tasks run (from the ids each engine's tasks logged; cold: all ${all.length}, warm: none, changed: the ${expected.changed.length} of group ${changedGroup}): ` +
          (checks.length ? `**mismatches:** ${checks.join("; ")}` : "every engine ran exactly the right tasks in every phase."),
      );
    } finally {
      await oneWorker?.stop();
      await stock?.stop();
    }
  }

  // --- start to first task: whole processes --------------------------------------------------
  if (only.has("start")) {
    const mark = join(work, "mark");
    const firstTask: Record<Engine, number[]> = { cairn: [], prefect: [], hamilton: [] };
    const startState = join(work, "start-cairn");
    for (let round = 0; round <= sizes.startRounds; round++) {
      log(`start to first task, round ${round}/${sizes.startRounds}${round ? "" : " (warm-up, not counted)"}...`);
      for (const engine of engines) {
        const started = performance.timeOrigin + performance.now();
        if (engine === "cairn") await runProcess(process.execPath, [cairnBin, "run", join(here, "cairn-flow.ts"), "--no-cache", "--root", startState], { CAIRN_PEERS_WORKLOAD: "start", PEERS_MARK: mark });
        else await peer(engine, ["start"], { ...prefectEnv(prefectHome), PEERS_MARK: mark });
        if (round) firstTask[engine].push(Number(readFileSync(mark, "utf8")) - started);
      }
    }
    const s = Object.fromEntries(engines.map((e) => [e, median(firstTask[e])])) as Record<Engine, number>;
    summary.startToFirstTaskMs = Object.fromEntries(engines.map((e) => [e, Math.round(s[e])]));
    sections.push(
      `Start to first task (a one-task flow; spawn to the task's first line, whole process, median of ${sizes.startRounds} alternating rounds; Cairn: \`cairn run\`, embedded store, \`--no-cache\`; Prefect with its temporary server):\n\n` +
        `| Cairn | Prefect | Hamilton | Cairn/Prefect | Cairn/Hamilton |\n| ---: | ---: | ---: | ---: | ---: |\n` +
        `| ${fmtS(s.cairn)} s | ${fmtS(s.prefect)} s | ${fmtS(s.hamilton)} s | ${ratio(s.cairn, s.prefect)} | ${ratio(s.cairn, s.hamilton)} |`,
    );
  }

  console.log(
    `Peers: Prefect ${versions.prefect}, Apache Hamilton ${versions.hamilton}; MLflow ${mlflowVersion}; Node ${process.version}. ` +
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, load average ${loadavg().map((l) => l.toFixed(1)).join(" / ")} (1 / 5 / 15 min) at the end. ${quick ? "Quick mode." : ""}\n`,
  );
  console.log(sections.join("\n\n"));
  console.log(JSON.stringify(summary));
} finally {
  await rm(work, { recursive: true, force: true });
}
