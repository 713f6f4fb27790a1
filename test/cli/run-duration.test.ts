/**
 * A flow run has one duration: the summary's `Flow succeeded in`, `cairn runs`, `cairn show` and
 * the report's header all say the time from its flow run's start to the end it is recorded with,
 * measured on the monotonic clock and recorded as the run's `cairn.duration_ms` (its start and end
 * times are wall times, which a clock step moves: test/task-duration.test.ts).
 * (They once measured different spans: the summary from after the run's record and cache were
 * open to after its report was uploaded, the record from its creation to before the report.)
 * On the embedded store and on a real MLflow server, through `cairn` as a user runs it.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { formatDuration } from "../../packages/cli/src/reporter.ts";
import { duration as reportDuration } from "../../packages/report/src/render.ts";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, repo, tmp, useMlflowServer } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");
const hitsThenSlow = join(repo, "test/fixtures/hits-then-slow.flow.ts");
const clockStep = join(repo, "packages/cache/test/fixtures/skew-clock.mjs");

/** The run's record as `cairn runs --json` lists it. */
async function recordOf(runId: string, cwd: string, env: NodeJS.ProcessEnv) {
  const listed = await cairn(["runs", "--json"], { cwd, env });
  return (JSON.parse(listed.stdout) as Array<{ runId: string; startTime: number; endTime: number; tags: Record<string, string> }>).find((r) => r.runId === runId)!;
}

/**
 * The run's duration as it recorded it, the clock unstepped: its wall span, with no
 * `cairn.duration_ms` (that tag, one more request, is sent only when the clock stepped during the run).
 */
function ownDuration(record: { startTime: number; endTime: number; tags: Record<string, string> }): number {
  expect(record.tags["cairn.duration_ms"]).toBeUndefined();
  return record.endTime - record.startTime;
}

/** `cairn runs`, `cairn show` and the report (the one the run wrote, and one written again from the record) say `recorded`. */
async function expectSaid(runId: string, recorded: number, cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const said = formatDuration(recorded);
  const row = (await cairn(["runs"], { cwd, env })).stdout.split("\n").find((l) => l.startsWith(runId));
  expect(row?.split(/\s+/).at(-1)).toBe(said);
  // Its start, in UTC, said so.
  expect(row).toMatch(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC /);
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
  expect(formatDuration(ownDuration(first))).toBe(said);
  await expectSaid(runId!, ownDuration(first), cwd, env);

  // To the millisecond, on a re-run whose tasks all come from the cache: the flow event's durationMs is the one recorded.
  const again = await cairn(["run", ok, "--json"], { cwd, env });
  const last = again.json.at(-1) as { type: string; status: string; runId: string; durationMs: number };
  expect(last).toMatchObject({ type: "flow", status: "succeeded" });
  const second = await recordOf(last.runId, cwd, env);
  expect(last.durationMs).toBe(ownDuration(second));
  await expectSaid(last.runId, last.durationMs, cwd, env);
}

describe("a flow run's duration, the same in the summary, cairn runs, cairn show and the report", () => {
  it("on the embedded store", async () => {
    await expectOneDuration({});
  });

  describe("on a real MLflow server", () => {
    const server = useMlflowServer();

    it("reads the same from the server", async () => {
      await expectOneDuration({ MLFLOW_TRACKING_URI: server.uri });
    });

    it("a wall clock stepped back an hour mid-run (NTP, a laptop waking): the duration is still the time it took; the server's start and end times stay wall times", async () => {
      const cwd = await tmp("cairn-cli-duration-step-");
      const env = { MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: "clock-step" };
      const stepFile = join(cwd, "step");
      const preload = `${pathToFileURL(clockStep).href}?ms=${-3600_000}&file=${encodeURIComponent(stepFile)}`;
      let stepped = false;
      const ran = await start(process.execPath, [cairnBin, "run", hitsThenSlow, "--json", "-p", "waitMs=1500"], {
        cwd,
        env: childEnv({ ...env, NODE_OPTIONS: `--import ${preload}` }),
        onStdout: (out) => {
          if (stepped || !/"status":"running","runId":"[^"]+","task":"wait"/.test(out)) return;
          stepped = true;
          void writeFile(stepFile, "");
        },
      }).done;
      expect(ran.code, ran.stderr).toBe(0);
      expect(stepped).toBe(true);
      const last = ran.json.at(-1) as { type: string; runId: string; durationMs: number };
      expect(last.durationMs).toBeGreaterThanOrEqual(1500);
      expect(last.durationMs).toBeLessThan(60_000);
      const record = await recordOf(last.runId, cwd, env);
      expect(record.endTime - record.startTime).toBeLessThan(0);
      expect(Number(record.tags["cairn.duration_ms"])).toBe(last.durationMs);
      const said = formatDuration(last.durationMs);
      const row = (await cairn(["runs"], { cwd, env })).stdout.split("\n").find((l) => l.startsWith(last.runId));
      expect(row?.split(/\s+/).at(-1)).toBe(said);
      const shown = await cairn(["show", last.runId], { cwd, env });
      expect(shown.stdout.split("\n")[0]).toBe(`hits-then-slow  run ${last.runId}  FINISHED  ${said}`);
      const out = join(cwd, "report.html");
      expect((await cairn(["report", last.runId, "--out", out], { cwd, env })).code).toBe(0);
      expect(await readFile(out, "utf8")).toContain(` · took ${reportDuration(last.durationMs)} · `);
    }, 120_000);
  });
});
