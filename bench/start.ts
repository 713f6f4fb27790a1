/**
 * Start to first task, whole processes: `cairn run` from Cairn installed by npm (the packed
 * tarballs, in a project outside the workspace) against `cairn run` inside this workspace
 * (its bundle), and `tsx flow.ts` from the installed package for reference. Each round runs
 * every variant once, in turn; the figure is the median over rounds of the time from
 * spawning the process to the first line of the flow's only task, and of the whole process.
 * Also reports the packed size of each tarball and the size of the installed node_modules.
 *
 *   tsx bench/start.ts [rounds]     # prints a JSON line last
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const rounds = Number(process.argv[2] ?? 15);
const work = mkdtempSync(join(tmpdir(), "cairn-bench-start-"));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && k !== "NODE_OPTIONS"));
const FLOW = `import { writeFileSync } from "node:fs";
import { flow, task } from "cairn-dag";
const first = task("first").run(async () => {
  writeFileSync(process.env.CAIRN_BENCH_MARK!, String(performance.timeOrigin + performance.now()));
  return { ok: true };
});
export default flow("start").build(() => ({ ok: first({}).ok }));
`;

try {
  const packed = join(work, "packed");
  execFileSync("bash", [join(repo, "scripts/pack.sh"), packed], { stdio: "ignore" });
  const tarballs = readdirSync(packed).filter((f) => f.endsWith(".tgz"));
  const project = join(work, "project");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "bench", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs.map((t) => join(packed, t))], { cwd: project, env, stdio: "ignore" });
  writeFileSync(join(project, "flow.ts"), FLOW);
  // The workspace's copy lives inside the repo, where `cairn-dag` resolves to the sources.
  const inRepo = join(repo, "bench", ".start-flow");
  mkdirSync(inRepo, { recursive: true });
  writeFileSync(join(inRepo, "flow.ts"), FLOW);

  const variants = {
    installed: { cwd: project, argv: [join(project, "node_modules/cairn-dag/bin/cairn.mjs"), "run", "flow.ts", "--no-cache"] },
    workspace: { cwd: inRepo, argv: [join(repo, "packages/cairn/bin/cairn.mjs"), "run", "flow.ts", "--no-cache"] },
    "installed-tsx": { cwd: project, argv: [join(project, "node_modules/tsx/dist/cli.mjs"), "flow.ts", "--no-cache"] },
  };
  const mark = join(work, "mark");
  const times: Record<string, { firstTask: number[]; whole: number[] }> = {};
  for (let round = 0; round <= rounds; round++) {
    for (const [name, v] of Object.entries(variants)) {
      const started = performance.timeOrigin + performance.now();
      const ran = spawnSync(process.execPath, v.argv, { cwd: v.cwd, env: { ...env, CAIRN_BENCH_MARK: mark }, stdio: "ignore" });
      const ended = performance.timeOrigin + performance.now();
      if (ran.status !== 0) throw new Error(`${name} exited ${ran.status}`);
      if (round === 0) continue; // the first round compiles the flows and warms the disk cache
      const t = (times[name] ??= { firstTask: [], whole: [] });
      t.firstTask.push(Number(readFileSync(mark, "utf8")) - started);
      t.whole.push(ended - started);
    }
  }
  const median = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
  const duKb = (dir: string) => Number(execFileSync("du", ["-sk", dir], { encoding: "utf8" }).split("\t")[0]);
  const result = {
    rounds,
    ...Object.fromEntries(Object.entries(times).flatMap(([name, t]) => [[`${name}FirstTaskMs`, median(t.firstTask)], [`${name}WholeMs`, median(t.whole)]])),
    packedKb: Object.fromEntries(tarballs.map((t) => [t, Math.round(statSync(join(packed, t)).size / 1024)])),
    installedNodeModulesKb: duKb(join(project, "node_modules")),
    cairnPackagesInstalledKb: duKb(join(project, "node_modules/@cairn")) + duKb(join(project, "node_modules/cairn-dag")),
  };
  console.log(JSON.stringify(result));
} finally {
  rmSync(work, { recursive: true, force: true });
  rmSync(join(repo, "bench", ".start-flow"), { recursive: true, force: true });
}
