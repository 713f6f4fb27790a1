/**
 * A flow run has one duration: the summary's `Flow succeeded in`, `cairn runs`, `cairn show` and
 * the report's header all say the time from its flow run's start to the end it is recorded with.
 * (They once measured different spans: the summary from after the run's record and cache were
 * open to after its report was uploaded, the record from its creation to before the report.)
 * On the embedded store and on a real MLflow server, through `cairn` as a user runs it.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { formatDuration } from "../../packages/cli/src/reporter.ts";
import { duration as reportDuration } from "../../packages/report/src/render.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

/** The run's record as `cairn runs --json` lists it. */
async function recordOf(runId: string, cwd: string, env: NodeJS.ProcessEnv) {
  const listed = await cairn(["runs", "--json"], { cwd, env });
  return (JSON.parse(listed.stdout) as Array<{ runId: string; startTime: number; endTime: number }>).find((r) => r.runId === runId)!;
}

/** `cairn runs`, `cairn show` and the report (the one the run wrote, and one written again from the record) say `recorded`. */
async function expectSaid(runId: string, recorded: number, cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const said = formatDuration(recorded);
  const row = (await cairn(["runs"], { cwd, env })).stdout.split("\n").find((l) => l.startsWith(runId));
  expect(row?.split(/\s+/).at(-1)).toBe(said);
  const shown = await cairn(["show", runId], { cwd, env });
  expect(shown.stdout.split("\n")[0]).toBe(`ok  run ${runId}  FINISHED  ${said}`);
  const out = join(cwd, `report-${runId}.html`);
  expect((await cairn(["report", runId, "--out", out], { cwd, env })).code).toBe(0);
  const reports = [await readFile(out, "utf8")];
  if (!env.MLFLOW_TRACKING_URI) reports.push(await readFile(join(cwd, ".cairn/artifacts", runId, "cairn/report.html"), "utf8"));
  for (const html of reports) expect(html).toContain(` · took ${reportDuration(recorded)} · `);
}

async function expectOneDuration(env: NodeJS.ProcessEnv): Promise<void> {
  const cwd = await tmp("cairn-cli-duration-");
  // As a user sees it: the summary's line, with the duration as `cairn runs` prints it.
  const ran = await cairn(["run", ok], { cwd, env });
  expect(ran.code, ran.stderr).toBe(0);
  const [, said, runId] = /^Flow succeeded in (\S+), run ([0-9a-f]{32})$/m.exec(ran.stdout) ?? [];
  expect(said, ran.stdout).toBeDefined();
  const first = await recordOf(runId!, cwd, env);
  expect(formatDuration(first.endTime - first.startTime)).toBe(said);
  await expectSaid(runId!, first.endTime - first.startTime, cwd, env);

  // To the millisecond, on a re-run whose tasks all come from the cache: the flow event's durationMs is the record's.
  const again = await cairn(["run", ok, "--json"], { cwd, env });
  const last = again.json.at(-1) as { type: string; status: string; runId: string; durationMs: number };
  expect(last).toMatchObject({ type: "flow", status: "succeeded" });
  const second = await recordOf(last.runId, cwd, env);
  expect(last.durationMs).toBe(second.endTime - second.startTime);
  await expectSaid(last.runId, last.durationMs, cwd, env);
}

describe("a flow run's duration, the same in the summary, cairn runs, cairn show and the report", () => {
  it("on the embedded store", async () => {
    await expectOneDuration({});
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
      await expectOneDuration({ MLFLOW_TRACKING_URI: server.uri });
    });
  });
});
