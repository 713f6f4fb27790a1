/**
 * `cairn show` of a flow run says why it failed or was cancelled, and lists every task, skipped
 * ones too, with why each one failed or was skipped; `cairn show` of a failed task run prints its
 * error whole. On the embedded store and on a real MLflow server.
 */
import { flow, task, when } from "cairn-dag";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { cairn, fixture, tmp, useMlflowServer } from "./helpers.ts";

const outcomes = fixture("outcomes.flow.ts");

interface Shown {
  tasks: { runId: string; name: string; status: string; tags: Record<string, string> }[];
}

async function expectShown(env: NodeJS.ProcessEnv): Promise<void> {
  const cwd = await tmp("cairn-cli-show-outcomes-");
  const ran = await cairn(["run", outcomes, "--json", "--failure-policy", "continue"], { cwd, env });
  expect(ran.code).toBe(1);
  const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;

  const shown = await cairn(["show", flowRunId], { cwd, env });
  expect(shown.code).toBe(0);
  // The flow run's own error (its cairn.error tags), under its header.
  expect(shown.stdout).toMatch(/^started .*\nerror: TaskFailed: task "boom" failed: the source table is empty\nsecond line of the message; task "invalid" failed: /m);
  // The flow run's task counters, on a line of their own (not among its metrics): those above 0.
  expect(shown.stdout).toMatch(/^tasks: 5 \(1 succeeded, 2 failed, 2 skipped\)$/m);
  expect(shown.stdout).not.toMatch(/^metrics: .*cairn\./m);
  const row = (name: string) => shown.stdout.split("\n").find((l) => l.startsWith(`${name} `)) ?? `(no row for ${name})`;
  expect(row("boom")).toMatch(/ FAILED .* Error: the source table is empty\.\.\.$/);
  expect(row("after-boom")).toMatch(/ KILLED .* skipped: upstream task "boom" failed$/);
  expect(row("after-after")).toMatch(/ KILLED .* skipped: upstream task "boom" failed$/);
  expect(row("invalid")).toMatch(/ FAILED .* InputValidationError: /);
  expect(row("fine")).toMatch(/ FINISHED /);

  const tasks = (JSON.parse((await cairn(["show", flowRunId, "--json"], { cwd, env })).stdout) as Shown).tasks;
  const boom = tasks.find((t) => t.name === "boom")!;
  const one = await cairn(["show", boom.runId], { cwd, env });
  expect(one.code).toBe(0);
  // Its whole error with its stack, as its cairn/error.txt keeps it: the stderr summary's hint says `cairn show` prints it.
  expect(one.stdout).toMatch(/\nerror: Error: the source table is empty\nsecond line of the message\n {4}at [^\n]*outcomes\.flow\.ts:5:9\)?\n/);
  const json = JSON.parse((await cairn(["show", boom.runId, "--json"], { cwd, env })).stdout) as { run: { errorText?: string } };
  expect(json.run.errorText).toMatch(/^Error: the source table is empty\nsecond line of the message\n {4}at /);
  const skipped = tasks.find((t) => t.name === "after-boom")!;
  expect((await cairn(["show", skipped.runId], { cwd, env })).stdout).toContain('skipped: upstream task "boom" failed');
}

/** A flow run cancelled with a reason that holds a secret: `cairn show` prints the reason as it was recorded, masked. */
async function expectCancelShown(env: NodeJS.ProcessEnv): Promise<void> {
  const SECRET = "s3cr3t-show-cancel-4711";
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const hold = task("hold").run(async (_, ctx) => {
    started();
    await new Promise((_r, fail) => ctx.signal.addEventListener("abort", () => fail(ctx.signal.reason), { once: true }));
    return {};
  });
  const root = await tmp("cairn-cli-show-cancel-");
  const run = await flow("show-cancelled").build(() => (hold(), {})).run({ root, env, cache: false, secrets: { CAIRN_TOKEN: SECRET } });
  await running;
  const result = await run.cancel(`the deploy window closed (token ${SECRET})`);
  expect(result.status).toBe("cancelled");
  const shown = await cairn(["show", result.runId, "--root", root], { env });
  expect(shown.code, shown.stderr).toBe(0);
  expect(shown.stdout).toMatch(/^started .*\ncancelled: the deploy window closed \(token \*\*\*\)\n/m);
  expect(shown.stdout).not.toContain(SECRET);
}

/**
 * A task skipped by a false condition, its own or one above it: `cairn show` says so, and says
 * nothing failed (it read every skip but two kinds as "upstream task … failed", and named the
 * condition's text as that task).
 */
async function expectConditionShown(env: NodeJS.ProcessEnv): Promise<void> {
  const source = task("source").run(async () => ({ score: 0.5 }));
  const load = task("load").run(async () => ({ rows: 3 }));
  const train = task("train").input<{ rows: number }>().run(async ({ rows }) => ({ model: rows }));
  const deploy = task("deploy").input<{ score: number }>().run(async () => ({}));
  const root = await tmp("cairn-cli-show-condition-");
  const f = flow("show-condition")
    .params(z.object({ go: z.boolean().default(false) }))
    .build(({ params }) => {
      const s = source();
      const l = load({}, { if: params.go });
      train({ rows: l.rows });
      deploy({ score: s.score }, { if: when(s.score, (v) => v > 0.9) });
      return {};
    });
  const result = await (await f.run({ root, env, cache: false })).wait();
  expect(result.status).toBe("succeeded");
  const shown = await cairn(["show", result.runId, "--root", root], { env });
  expect(shown.code, shown.stderr).toBe(0);
  const row = (name: string) => shown.stdout.split("\n").find((l) => l.startsWith(`${name} `)) ?? `(no row for ${name})`;
  expect(row("load")).toMatch(/ skipped: its condition \(params\.go\) is false$/);
  expect(row("train")).toMatch(/ skipped: the condition of upstream task "load" \(params\.go\) is false$/);
  expect(row("deploy")).toMatch(/ skipped: its condition \(source\.score tested by when\(\)\) is false$/);
  expect(shown.stdout).not.toContain("failed");
}

/**
 * A flow run's task counters add up to its tasks: before, the hits were said beside the successes
 * that count them (`tasks: 8 (8 succeeded, 4 cached)`; on MLflow `8 (5 succeeded, 3 cached, 1
 * failed, 2 skipped)`, 11 of 8). Now in the words of `cairn run`'s summary, disjoint.
 */
async function expectCountsAddUp(env: NodeJS.ProcessEnv): Promise<void> {
  const cwd = await tmp("cairn-cli-show-counts-");
  const file = fixture("failing-load.flow.ts");
  const first = await cairn(["run", file, "--json"], { cwd, env });
  const again = await cairn(["run", file, "--json"], { cwd, env });
  expect([first.code, again.code]).toEqual([1, 1]);
  const said = async (ran: typeof first) => {
    const runId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
    const shown = await cairn(["show", runId], { cwd, env });
    expect(shown.code, shown.stderr).toBe(0);
    return /^tasks: .*$/m.exec(shown.stdout)?.[0];
  };
  expect(await said(first)).toBe("tasks: 8 (5 succeeded, 1 failed, 2 skipped)");
  // extract's two items, transform and validate come from the cache (the map's run has no entry of its own); load fails again.
  expect(await said(again)).toBe("tasks: 8 (1 succeeded, 4 cached, 1 failed, 2 skipped)");
}

describe("cairn show: why the flow and each task failed or were skipped or cancelled", () => {
  it("task counters that add up to the tasks, hits apart from the tasks that ran, on the embedded store", async () => {
    await expectCountsAddUp({});
  });

  it("on the embedded store", async () => {
    await expectShown({});
  });

  it("a task skipped by a false condition, its own or one above it, on the embedded store", async () => {
    await expectConditionShown({});
  });

  it("a cancelled flow run's reason, on the embedded store", async () => {
    await expectCancelShown({});
  });

  describe("on a real MLflow server", () => {
    const server = useMlflowServer();

    it("reads the same from the server", async () => {
      await expectShown({ MLFLOW_TRACKING_URI: server.uri });
    });

    it("a cancelled flow run's reason", async () => {
      await expectCancelShown({ MLFLOW_TRACKING_URI: server.uri });
    });

    it("task counters that add up to the tasks", async () => {
      await expectCountsAddUp({ MLFLOW_TRACKING_URI: server.uri });
    });
  });
});
