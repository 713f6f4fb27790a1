/**
 * `cairn show` takes a run id or a unique prefix of one (4 hex digits or more, as git takes a
 * short commit id), of a flow run or a task run, in the embedded store and in a real MLflow
 * server; an ambiguous prefix lists the runs it matches, one that matches nothing says so.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore } from "@cairn/core";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

interface Run {
  runId: string;
  name: string;
  parentRunId?: string;
  tags: Record<string, string>;
}
interface Shown {
  run: Run;
  tasks: Run[];
}

const flowRunIdOf = (stdout: string) => (JSON.parse(stdout.split("\n")[0]!) as { runId: string }).runId;
const shown = (stdout: string) => JSON.parse(stdout) as Shown;

describe("cairn show with the embedded store", () => {
  let cwd: string;
  let first: string;
  let second: string;
  beforeAll(async () => {
    cwd = await tmp("cairn-cli-show-");
    first = flowRunIdOf((await cairn(["run", ok, "--json"], { cwd })).stdout);
    // The re-run's tasks are cache hits, recorded together.
    second = flowRunIdOf((await cairn(["run", ok, "--json"], { cwd })).stdout);
  });

  it("a prefix of a flow run's id shows that run, as its whole id does, in any case", async () => {
    const whole = await cairn(["show", first, "--json"], { cwd });
    for (const prefix of [first.slice(0, 6), first.slice(0, 4).toUpperCase(), first.slice(0, 31)]) {
      const r = await cairn(["show", prefix, "--json"], { cwd });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(whole.stdout);
    }
    expect(shown(whole.stdout).run.runId).toBe(first);
    const plain = await cairn(["show", first.slice(0, 8)], { cwd });
    expect(plain.stdout).toMatch(new RegExp(`^ok  run ${first}  FINISHED`));
  });

  it("a prefix of a task run's id shows that task run and the flow run it belongs to", async () => {
    const task = shown((await cairn(["show", first, "--json"], { cwd })).stdout).tasks[0]!;
    const r = await cairn(["show", task.runId.slice(0, 8), "--json"], { cwd });
    expect(r.code).toBe(0);
    expect(shown(r.stdout).run).toMatchObject({ runId: task.runId, name: task.name, parentRunId: first });
    const plain = await cairn(["show", task.runId.slice(0, 8)], { cwd });
    expect(plain.stdout).toContain(`${task.name}  run ${task.runId}  FINISHED`);
    expect(plain.stdout).toContain(`task run of flow run ${first}`);
  });

  it("an ambiguous prefix is refused, listing the runs it matches", async () => {
    // Cache hits recorded at once share the first 16 digits of their ids in the embedded store.
    const hits = shown((await cairn(["show", second, "--json"], { cwd })).stdout).tasks;
    expect(hits).toHaveLength(2);
    const common = hits[0]!.runId.slice(0, 8);
    expect(hits[1]!.runId.startsWith(common)).toBe(true);
    const r = await cairn(["show", common], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`RunIdError: The run id prefix "${common}" is ambiguous: 2 runs in .*\\.cairn start with it: `));
    for (const t of hits) expect(r.stderr).toContain(`${t.runId} (task run "${t.name}" of flow run ${second.slice(0, 8)}, FINISHED, started `);
    expect(r.stderr).toContain("Give more digits of the one you mean.");
    // One more digit than they share tells them apart.
    const one = hits[0]!.runId;
    const longer = one.slice(0, [...one].findIndex((ch, i) => ch !== hits[1]!.runId[i]) + 1);
    expect(shown((await cairn(["show", longer, "--json"], { cwd })).stdout).run.runId).toBe(one);
  });

  it.each([
    [["show", "0000000"], /RunIdError: No run id starts with "0000000" in .*\.cairn\. List runs with `cairn runs`\./],
    [["show", "0".repeat(32)], /RunIdError: No run 0{32} in .*\.cairn\. List runs with `cairn runs`\./],
    [["show", "abc"], /RunIdError: Expected at least 4 hex digits of a run id, got "abc" \(3\)\./],
    [["show", "run-42"], /RunIdError: Expected a run id \(32 hex digits\) or its first 4 or more, got "run-42"\./],
    [["show", "a".repeat(33)], /RunIdError: Expected a run id \(32 hex digits\) or its first 4 or more/],
    [["show", "abcd", "ef01"], /Expected one run id, got 2: abcd ef01\./],
  ])("cairn %s exits 2 and says why", async (args, message) => {
    const r = await cairn(args, { cwd });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it("cairn runs given a run id (or a name) refuses it and says what to run instead, rather than listing every run", async () => {
    const task = shown((await cairn(["show", first, "--json"], { cwd })).stdout).tasks[0]!;
    const byId = await cairn(["runs", task.runId], { cwd });
    expect(byId.code).toBe(2);
    expect(byId.stdout).toBe("");
    expect(byId.stderr).toContain(
      `Expected no arguments after \`cairn runs\` but its flags, got "${task.runId}". To see one run, a flow run or a task run, run \`cairn show ${task.runId}\`.`,
    );
    const byName = await cairn(["runs", "ok"], { cwd });
    expect(byName.code).toBe(2);
    expect(byName.stderr).toContain('got "ok". To list one experiment\'s flow runs, run `cairn runs --experiment ok`.');
  });

  it("--experiment narrows where a prefix is looked for", async () => {
    const elsewhere = await cairn(["show", first.slice(0, 8), "--experiment", "other"], { cwd });
    // No experiment has that name: said as such (it could be a typo, or deleted), not as a missing run.
    expect(elsewhere.stderr).toMatch(/No experiment named "other" in .*\.cairn/);
    expect(elsewhere.code).toBe(2);
    const here = await cairn(["show", first.slice(0, 8), "--experiment", "ok", "--json"], { cwd });
    expect(shown(here.stdout).run.runId).toBe(first);
  });

  it("shows every task run of a flow run with more than 10,000, the first started first, in text and in --json", async () => {
    const dir = await tmp("cairn-cli-show-many-");
    const store = new LocalStore({ root: join(dir, ".cairn") });
    const experimentId = await store.ensureExperiment("chain");
    const startTime = Date.now() - 60_000;
    const flowRun = await store.recordRun({ experimentId, name: "chain", startTime, status: "FINISHED", tags: { "cairn.kind": "flow" } });
    const steps = 10_005;
    for (let i = 1; i <= steps; i++) await store.recordRun({ experimentId, name: `step-${i}`, parentRunId: flowRun, startTime: startTime + i, status: "FINISHED" });
    await store.flush();
    const json = await cairn(["show", flowRun, "--json"], { cwd: dir });
    expect(json.code, json.stderr).toBe(0);
    // Before: the newest 10,000 only, step-6 … step-10005, and nothing said of the others.
    const names = shown(json.stdout).tasks.map((t) => t.name);
    expect(names).toHaveLength(steps);
    expect(names.slice(0, 2)).toEqual(["step-1", "step-2"]);
    expect(names.at(-1)).toBe(`step-${steps}`);
    const text = await cairn(["show", flowRun], { cwd: dir });
    expect(text.code, text.stderr).toBe(0);
    const rows = text.stdout.split("\n").filter((l) => /^step-\d+ /.test(l));
    expect(rows).toHaveLength(steps);
    expect(rows[0]).toMatch(/^step-1 /);
  }, 120_000);
});

describe("cairn show with an MLflow server", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("finds flow runs and task runs by a prefix of their id", async () => {
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const cwd = await tmp("cairn-cli-show-mlflow-");
    const r = await cairn(["run", ok, "--json", "--experiment", "show-prefix"], { cwd, env });
    expect(r.code).toBe(0);
    const runId = flowRunIdOf(r.stdout);
    const whole = await cairn(["show", runId, "--json"], { cwd, env });
    expect(whole.code).toBe(0);
    const byPrefix = await cairn(["show", runId.slice(0, 8), "--json"], { cwd, env });
    expect(byPrefix.stderr).toBe("");
    expect(byPrefix.stdout).toBe(whole.stdout);
    const task = shown(whole.stdout).tasks[0]!;
    const taskShown = await cairn(["show", task.runId.slice(0, 6), "--experiment", "show-prefix", "--json"], { cwd, env });
    expect(shown(taskShown.stdout).run).toMatchObject({ runId: task.runId, parentRunId: runId });
    const none = await cairn(["show", "fffff0"], { cwd, env });
    expect(none.stderr).toMatch(new RegExp(`No run id starts with "fffff0" in ${server.uri.replace(/[.]/g, "\\.")}`));
    expect(none.code).toBe(2);
  });
});
