/**
 * Caching end to end, on real stores: the embedded store and tracker in a temp root
 * per test, child processes for the cross-process cases, a real redis-server.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { type Artifact, type FlowResult, LocalStore, type RunEvent, flow, shell, task } from "cairn-dag";
import { startRedisServer } from "../packages/cache/test/redis-server.ts";

const repo = resolve(import.meta.dirname, "..");
const tmp = () => mkdtemp(join(tmpdir(), "cairn-caching-"));
const statuses = (r: FlowResult<unknown>) => Object.fromEntries(Object.entries(r.tasks).map(([id, t]) => [id, t.status]));

async function runCollect(f: { run: (o: any) => Promise<{ on: (l: (e: RunEvent) => void) => void; wait: () => Promise<FlowResult<unknown>> }> }, options: object) {
  const run = await f.run({ env: {}, ...options });
  const events: RunEvent[] = [];
  run.on((e) => events.push(e));
  const result = await run.wait();
  return { result, events, warnings: events.filter((e) => e.type === "log" && e.level === "warn").map((e) => (e as { message: string }).message) };
}

describe("a second run", () => {
  it("is all cached, runs nothing, and records hits tagged with their source run", async () => {
    const root = await tmp();
    let calls = 0;
    const a = task("a").input<{ n: number }>().run(({ n }) => (calls++, { v: n + 1 }));
    const b = task("b").input<{ v: number }>().run(({ v }) => (calls++, { w: v * 2 }));
    const f = flow("second").build(() => ({ w: b({ v: a({ n: 1 }).v }).w }));
    const first = (await runCollect(f, { root })).result;
    expect(statuses(first)).toEqual({ a: "succeeded", b: "succeeded" });
    expect(calls).toBe(2);
    const { result: second, events } = await runCollect(f, { root });
    expect(statuses(second)).toEqual({ a: "cached", b: "cached" });
    expect(calls).toBe(2);
    expect(second.outputs).toEqual({ w: 4 });
    expect(second.tasks.b!.cachedFrom).toBe(first.tasks.b!.runId);
    expect(events.find((e) => e.type === "task" && e.task === "a" && e.status === "cached")).toMatchObject({ cachedFrom: first.tasks.a!.runId });
    const store = new LocalStore({ root });
    const hit = await store.getRun(second.tasks.b!.runId!);
    expect(hit).toMatchObject({ status: "FINISHED" });
    expect(hit!.tags["cairn.cached_from"]).toBe(first.tasks.b!.runId);
  });
});

describe("what invalidates an entry", () => {
  it("a code change re-runs that task and its dependants only", async () => {
    const root = await tmp();
    const calls: string[] = [];
    const up = task("up").run(() => (calls.push("up"), { x: 1 }));
    const mid1 = task("mid").input<{ x: number }>().run(({ x }) => (calls.push("mid"), { y: x + 1 }));
    const mid2 = task("mid").input<{ x: number }>().run(({ x }) => (calls.push("mid"), { y: x + 100 }));
    const down = task("down").input<{ y: number }>().run(({ y }) => (calls.push("down"), { z: y }));
    const side = task("side").input<{ x: number }>().run(({ x }) => (calls.push("side"), { s: x }));
    const build = (mid: typeof mid1) => () => {
      const u = up();
      side({ x: u.x });
      return { z: down({ y: mid({ x: u.x }).y }).z };
    };
    await runCollect(flow("code").build(build(mid1)), { root });
    calls.length = 0;
    const { result } = await runCollect(flow("code").build(build(mid2)), { root });
    expect(statuses(result)).toEqual({ up: "cached", side: "cached", mid: "succeeded", down: "succeeded" });
    expect(calls.sort()).toEqual(["down", "mid"]);
    expect(result.outputs).toEqual({ z: 101 });
  });

  it("a param change re-runs what depends on it; identical upstream outputs leave dependants cached (early cut-off)", async () => {
    const root = await tmp();
    const calls: string[] = [];
    const parity = task("parity").input<{ n: number }>().run(({ n }) => (calls.push("parity"), { even: n % 2 === 0 }));
    const report = task("report").input<{ even: boolean }>().run(({ even }) => (calls.push("report"), { text: even ? "even" : "odd" }));
    const f = flow("cutoff")
      .params<{ n: number }>()
      .build(({ params }) => ({ text: report({ even: parity({ n: params.n }).even }).text }));
    await runCollect(f, { root, params: { n: 2 } });
    calls.length = 0;
    const { result } = await runCollect(f, { root, params: { n: 4 } });
    expect(statuses(result)).toEqual({ parity: "succeeded", report: "cached" });
    expect(calls).toEqual(["parity"]);
    calls.length = 0;
    const odd = await runCollect(f, { root, params: { n: 3 } });
    expect(statuses(odd.result)).toEqual({ parity: "succeeded", report: "succeeded" });
  });

  it("an input property that is undefined counts: the task can tell it from a missing one ({ seed: 42, ...cfg })", async () => {
    const root = await tmp();
    const fit = task("fit").input<{ cfg: { lr: number; seed?: number } }>().run(({ cfg }) => ({ seed: String({ seed: 42, ...cfg }.seed) }));
    const f = (cfg: { lr: number; seed?: number }) => flow("undefined-input").build(() => ({ seed: fit({ cfg }).seed }));
    const first = await runCollect(f({ lr: 1 }), { root });
    expect(first.result.outputs).toEqual({ seed: "42" });
    const second = await runCollect(f({ lr: 1, seed: undefined }), { root });
    expect(statuses(second.result)).toEqual({ fit: "succeeded" });
    expect(second.result.outputs).toEqual({ seed: "undefined" });
  });

  it("an input of -0 edited to 0 re-runs: the task is handed -0 and can tell it from 0", async () => {
    const root = await tmp();
    const show = task("show").input<{ x: number }>().run(({ x }) => ({ text: Object.is(x, -0) ? "-0" : String(x) }));
    const f = (x: number) => flow("negative-zero").build(() => ({ text: show({ x }).text }));
    expect((await runCollect(f(-0), { root })).result.outputs).toEqual({ text: "-0" });
    const second = await runCollect(f(0), { root });
    expect(statuses(second.result)).toEqual({ show: "succeeded" });
    expect(second.result.outputs).toEqual({ text: "0" });
    expect(statuses((await runCollect(f(0), { root })).result)).toEqual({ show: "cached" });
  });

  it("an artifact counts by content: new bytes miss, the same bytes under a new path hit", async () => {
    const root = await tmp();
    let reads = 0;
    const write = task("write")
      .input<{ text: string; name: string }>()
      .run(async ({ text, name }, ctx) => ({ file: await ctx.artifacts.write(name, text) }));
    const count = task("count")
      .input<{ file: Artifact }>()
      .run(async ({ file }) => (reads++, { chars: (await readFile(file.path, "utf8")).length }));
    const make = (text: string, name: string) => flow("art").build(() => ({ chars: count({ file: write({ text, name }).file }).chars }));
    await runCollect(make("hello", "a.txt"), { root });
    expect(reads).toBe(1);
    const samePathNewBytes = await runCollect(make("hello!", "a.txt"), { root });
    expect(statuses(samePathNewBytes.result)).toEqual({ write: "succeeded", count: "succeeded" });
    expect(reads).toBe(2);
    const newPathSameBytes = await runCollect(make("hello", "b.txt"), { root });
    expect(statuses(newPathSameBytes.result)).toEqual({ write: "succeeded", count: "cached" });
    expect(reads).toBe(2);
  });

  it("declared env vars enter the key by value, and their values are never stored", async () => {
    const root = await tmp();
    let calls = 0;
    const t = task("envy").env("CAIRN_TEST_REGION").run(() => (calls++, { ok: true }));
    const f = flow("env").build(() => ({ ok: t().ok }));
    await runCollect(f, { root, env: { CAIRN_TEST_REGION: "eu-west-secret-zone" } });
    await runCollect(f, { root, env: { CAIRN_TEST_REGION: "eu-west-secret-zone" } });
    expect(calls).toBe(1);
    await runCollect(f, { root, env: { CAIRN_TEST_REGION: "us-east" } });
    expect(calls).toBe(2);
    const files = await readdir(join(root, "cache"), { recursive: true });
    for (const file of files) {
      const text = await readFile(join(root, "cache", file), "utf8").catch(() => "");
      expect(text).not.toContain("eu-west-secret-zone");
    }
  });
});

describe("bad entries are misses, never crashes", () => {
  const setup = async () => {
    const root = await tmp();
    let calls = 0;
    const make = task("make").run(async (_, ctx) => (calls++, { file: await ctx.artifacts.write("out.txt", "payload") }));
    const f = flow("bad").build(() => ({ file: make().file }));
    const first = (await runCollect(f, { root })).result;
    return { root, f, first, calls: () => calls };
  };

  it("a corrupted entry file", async () => {
    const { root, f, calls } = await setup();
    const dir = join(root, "cache");
    for (const file of await readdir(dir, { recursive: true })) {
      if (file.endsWith(".json")) await writeFile(join(dir, file), "{ not json");
    }
    const { result } = await runCollect(f, { root });
    expect(statuses(result)).toEqual({ make: "succeeded" });
    expect(calls()).toBe(2);
  });

  it("a missing artifact, with a warning that says why", async () => {
    const { root, f, first, calls } = await setup();
    await rm((first.outputs as { file: Artifact }).file.path);
    const { result, warnings } = await runCollect(f, { root });
    expect(statuses(result)).toEqual({ make: "succeeded" });
    expect(calls()).toBe(2);
    expect(warnings.join("\n")).toMatch(/unusable: artifact .*out\.txt is missing; it was evicted/);
  });

  it("an artifact whose bytes changed", async () => {
    const { root, f, first, calls } = await setup();
    await writeFile((first.outputs as { file: Artifact }).file.path, "PAYLOAD");
    const { result, warnings } = await runCollect(f, { root });
    expect(statuses(result)).toEqual({ make: "succeeded" });
    expect(calls()).toBe(2);
    expect(warnings.join("\n")).toMatch(/changed since it was cached/);
  });

  it("a deleted source run", async () => {
    const { root, f, first, calls } = await setup();
    // Whatever the store's layout, the run is gone: its folder and its file.
    await rm(join(root, "runs", first.tasks.make!.runId!), { recursive: true, force: true });
    await rm(join(root, "runs", `${first.tasks.make!.runId!}.json`), { force: true });
    const { result, warnings } = await runCollect(f, { root });
    expect(statuses(result)).toEqual({ make: "succeeded" });
    expect(calls()).toBe(2);
    expect(warnings.join("\n")).toMatch(/source run .* no longer exists/);
  });
});

describe("what is never cached, and forcing re-runs", () => {
  it("failures are not stored", async () => {
    const root = await tmp();
    let calls = 0;
    const flaky = task("flaky").run(() => {
      if (++calls === 1) throw new Error("first time fails");
      return { ok: true };
    });
    const f = flow("fail").build(() => ({ ok: flaky().ok }));
    expect((await runCollect(f, { root })).result.status).toBe("failed");
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ flaky: "succeeded" });
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ flaky: "cached" });
  });

  it.each(["cancel", "timeout"] as const)("a process task stopped by a %s is not stored, even when its SIGTERM cleanup writes outputs and exits 0", async (how) => {
    const root = await tmp();
    const dir = await tmp();
    // The first time it runs until stopped, and on SIGTERM writes whole outputs and exits 0, as a
    // script that saves a checkpoint on its way out would; any later time it ends at once.
    const script = `if [ -e "$DIR/once" ]; then echo '{"x":2}' > "$CAIRN_OUTPUTS"; exit 0; fi
trap 'echo "{\\"x\\":1}" > "$CAIRN_OUTPUTS"; : > "$DIR/cleaned-up"; exit 0' TERM
: > "$DIR/once"
sleep 30 & wait`;
    const base = shell("stopped", script, { env: { DIR: dir } });
    const step = how === "timeout" ? base.timeout(1000) : base;
    const f = flow("stopped").build(() => ({ code: step().exitCode }));
    const first = await f.run({ env: { PATH: process.env.PATH }, root });
    if (how === "cancel") {
      // Its trap is set before it makes that file.
      while (!(await readdir(dir)).includes("once")) await new Promise((r) => setTimeout(r, 50));
      void first.cancel("test");
    }
    const stopped = await first.wait();
    expect(statuses(stopped)).toEqual({ stopped: how === "cancel" ? "cancelled" : "failed" });
    expect(await readdir(dir)).toContain("cleaned-up");
    const again = await runCollect(f, { root, env: { PATH: process.env.PATH } });
    expect(statuses(again.result)).toEqual({ stopped: "succeeded" });
    expect(again.result.tasks.stopped!.outputs).toMatchObject({ x: 2 });
    expect(statuses((await runCollect(f, { root, env: { PATH: process.env.PATH } })).result)).toEqual({ stopped: "cached" });
  });

  it("ttl expires entries", async () => {
    const root = await tmp();
    let calls = 0;
    // 3 s: the second run must hit inside it, also on a loaded machine.
    const t = task("short").cache({ ttl: 3000 }).run(() => (calls++, { ok: true }));
    const f = flow("ttl").build(() => ({ ok: t().ok }));
    await runCollect(f, { root });
    await runCollect(f, { root });
    expect(calls).toBe(1);
    await new Promise((r) => setTimeout(r, 3200));
    await runCollect(f, { root });
    expect(calls).toBe(2);
  });

  it("rerun runs a task and its dependants; refresh runs all; cache: false stores nothing", async () => {
    const root = await tmp();
    const a = task("a").run(() => ({ x: 1 }));
    const b = task("b").input<{ x: number }>().run(({ x }) => ({ y: x }));
    const c = task("c").run(() => ({ z: 1 }));
    const f = flow("force").build(() => (b({ x: a().x }), c(), {}));
    await runCollect(f, { root });
    expect(statuses((await runCollect(f, { root, cache: { rerun: ["a"] } })).result)).toEqual({ a: "succeeded", b: "succeeded", c: "cached" });
    expect(statuses((await runCollect(f, { root, cache: { refresh: true } })).result)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    const fresh = await tmp();
    await runCollect(f, { root: fresh, cache: false });
    expect(statuses((await runCollect(f, { root: fresh })).result)).toEqual({ a: "succeeded", b: "succeeded", c: "succeeded" });
    const store = new LocalStore({ root });
    const experimentIds = (await store.listExperiments()).map((e) => e.experimentId);
    const flowRuns = async () => (await store.searchRuns({ experimentIds, topLevelOnly: true })).map((r) => r.status);
    const before = await flowRuns();
    await expect(f.run({ root, env: {}, cache: { rerun: ["nope"] } })).rejects.toThrow(/Expected `rerun` to be a task name or node id of flow "force": a, b, c, got "nope"/);
    // Refused before anything is recorded: no flow run, RUNNING or otherwise.
    expect(await flowRuns()).toEqual(before);
  });

  it("the same key twice in one flow runs once", async () => {
    const root = await tmp();
    let calls = 0;
    const slow = task("slow").input<{ n: number }>().run(async ({ n }) => {
      calls++;
      await new Promise((r) => setTimeout(r, 100));
      return { n };
    });
    const f = flow("twice").build(() => (slow({ n: 1 }), slow({ n: 1 }), {}));
    const { result, events } = await runCollect(f, { root });
    expect(calls).toBe(1);
    expect(Object.values(result.tasks).map((t) => t.status).sort()).toEqual(["cached", "succeeded"]);
    expect(events.some((e) => e.type === "task" && e.status === "waiting")).toBe(true);
  });
});

/** Runs a fixture flow in a real child process through the CLI; resolves with its exit code and events. */
function cliRun(file: string, root: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; events: Array<Record<string, unknown>> }> {
  return new Promise((done, fail) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
    delete env.MLFLOW_TRACKING_URI;
    const child = spawn(process.execPath, [join(repo, "packages/cli/bin/cairn.mjs"), "run", file, "--json", "--root", root], { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, events: out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) }));
  });
}

describe("across processes", () => {
  it("two processes that need the same key at once compute it once, and both succeed", async () => {
    const root = await tmp();
    const markers = await tmp();
    const [one, two] = await Promise.all([
      cliRun(join(repo, "test/fixtures/single-flight.flow.ts"), root, { MARKER_DIR: markers }),
      cliRun(join(repo, "test/fixtures/single-flight.flow.ts"), root, { MARKER_DIR: markers }),
    ]);
    expect([one.code, two.code]).toEqual([0, 0]);
    expect(await readdir(markers)).toHaveLength(1); // the slow task ran once
    const finals = [one, two].map((r) => r.events.find((e) => e.type === "task" && e.task === "slow" && (e.status === "succeeded" || e.status === "cached"))!.status).sort();
    expect(finals).toEqual(["cached", "succeeded"]);
    const waited = [one, two].some((r) => r.events.some((e) => e.task === "slow" && e.status === "waiting"));
    expect(waited).toBe(true);
  });

  it("after kill -9 mid-flow, the next run resumes from what had finished", async () => {
    const root = await tmp();
    const markers = await tmp();
    const file = join(repo, "test/fixtures/single-flight.flow.ts");
    await new Promise<void>((done, fail) => {
      const env: NodeJS.ProcessEnv = { ...process.env, MARKER_DIR: markers };
      delete env.MLFLOW_TRACKING_URI;
      const child = spawn(process.execPath, [join(repo, "packages/cli/bin/cairn.mjs"), "run", file, "--json", "--root", root], { env, stdio: ["ignore", "pipe", "inherit"], detached: true });
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d;
        if (/"task":"fast".*?"status":"succeeded"|"status":"succeeded","runId":"[0-9a-f]+","task":"fast"/.test(out) && /"status":"running","runId":"[0-9a-f]+","task":"slow"/.test(out)) {
          process.kill(-child.pid!, "SIGKILL");
        }
      });
      child.on("error", fail);
      child.on("close", () => done());
    });
    const again = await cliRun(file, root, { MARKER_DIR: markers });
    expect(again.code).toBe(0);
    const status = (task: string) => again.events.find((e) => e.type === "task" && e.task === task && ["succeeded", "cached"].includes(e.status as string))?.status;
    expect(status("fast")).toBe("cached");
    expect(status("slow")).toBe("succeeded");
  });
});

describe("a shared redis cache", () => {
  it("serves hits to a run with an empty local root, via CAIRN_CACHE_URL", async () => {
    const server = await startRedisServer();
    try {
      let calls = 0;
      const t = task("shared").input<{ n: number }>().run(({ n }) => (calls++, { n }));
      const f = flow("redis").build(() => ({ n: t({ n: 7 }).n }));
      await runCollect(f, { root: await tmp(), tracker: false, env: { CAIRN_CACHE_URL: server.url } });
      const { result } = await runCollect(f, { root: await tmp(), tracker: false, env: { CAIRN_CACHE_URL: server.url } });
      expect(statuses(result)).toEqual({ shared: "cached" });
      expect(calls).toBe(1);
      const viaOption = await runCollect(f, { root: await tmp(), tracker: false, cache: { url: server.url } });
      expect(statuses(viaOption.result)).toEqual({ shared: "cached" });
    } finally {
      await server.stop();
    }
  });
});
