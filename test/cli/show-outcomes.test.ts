/**
 * `cairn show` of a flow run lists every task, skipped ones too, with why each one failed or was
 * skipped; `cairn show` of a failed task run prints its error whole. On the embedded store and
 * on a real MLflow server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, fixture, tmp } from "./helpers.ts";

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
  expect(one.stdout).toContain("error: Error: the source table is empty\nsecond line of the message\n(the whole text and its stack: artifact cairn/error.txt)");
  const skipped = tasks.find((t) => t.name === "after-boom")!;
  expect((await cairn(["show", skipped.runId], { cwd, env })).stdout).toContain('skipped: upstream task "boom" failed');
}

describe("cairn show: why each task failed or was skipped", () => {
  it("on the embedded store", async () => {
    await expectShown({});
  });

  describe("on a real MLflow server", () => {
    let server: MlflowServer;
    beforeAll(async () => {
      server = await startMlflowServer();
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("reads the same from the server", async () => {
      await expectShown({ MLFLOW_TRACKING_URI: server.uri });
    });
  });
});
