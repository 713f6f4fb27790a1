/**
 * `cairn show FLOW_RUN` lists a map's items and a sweep's trials, each indented under its map's or
 * sweep's row, in item order, and in `--json` after it (each with its map's run as its parent), so
 * that the run id of a failed item, which `cairn run`'s failure summary tells one to take from
 * this list, is there. On the embedded store and on a real MLflow server, where a flow run of
 * many maps is read with at most as many searches at once as the MLflow client lets out.
 */
import { describe, expect, it } from "vitest";
import { MAX_IN_FLIGHT } from "../../packages/mlflow/src/client/in-flight.ts";
import { startProxy } from "../reliability/helpers.ts";
import { cairn, fixture, tmp, useMlflowServer } from "./helpers.ts";

const file = fixture("show-items.flow.ts");

interface Run {
  runId: string;
  name: string;
  parentRunId?: string;
  status: string;
}

async function expectItemsShown(env: NodeJS.ProcessEnv): Promise<void> {
  const cwd = await tmp("cairn-cli-show-items-");
  const ran = await cairn(["run", file, "--json"], { cwd, env });
  expect(ran.code, ran.stderr).toBe(0);
  const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;

  const text = await cairn(["show", flowRunId], { cwd, env: { ...env, NO_COLOR: "1" } });
  expect(text.code, text.stderr).toBe(0);
  const lines = text.stdout.split("\n");
  // Before: one row `item FINISHED … cairn.failed=1`, and no `item[` rows.
  const items = lines.filter((l) => /^ {2}item\[\d+\] /.test(l));
  expect(items).toHaveLength(45);
  expect(items[0]).toMatch(/^ {2}item\[0\] +FINISHED /);
  expect(items[7]).toMatch(/^ {2}item\[7\] +FAILED .*item seven/);
  expect(items[44]).toMatch(/^ {2}item\[44\] /);
  // Right under their map's row.
  const mapRow = lines.findIndex((l) => /^item +FINISHED /.test(l));
  expect(mapRow).toBeGreaterThan(0);
  expect(lines[mapRow + 1]).toMatch(/^ {2}item\[0\] /);
  expect(lines.filter((l) => /^ {2}trial\[\d\] +FINISHED /.test(l))).toHaveLength(3);

  const json = await cairn(["show", flowRunId, "--json"], { cwd, env });
  expect(json.code, json.stderr).toBe(0);
  const tasks = (JSON.parse(json.stdout) as { tasks: Run[] }).tasks;
  const map = tasks.find((t) => t.name === "item")!;
  expect(map.parentRunId).toBe(flowRunId);
  const at = tasks.indexOf(map);
  expect(tasks.slice(at + 1, at + 46).map((t) => [t.name, t.parentRunId])).toEqual(Array.from({ length: 45 }, (_, i) => [`item[${i}]`, map.runId]));
  const failed = tasks.find((t) => t.name === "item[7]")!;
  expect(failed.status).toBe("FAILED");
  // The failed item's run id, from that list, shows its whole error.
  const one = await cairn(["show", failed.runId], { cwd, env });
  expect(one.code, one.stderr).toBe(0);
  // Where it belongs: its map's run, then the flow run (not "task run of flow run" and the map's run id).
  expect(one.stdout).toContain(`item of map run ${map.runId} (item) of flow run ${flowRunId}\n`);
  // The map's run lists its items, in item order.
  const ofMap = (JSON.parse((await cairn(["show", map.runId, "--json"], { cwd, env })).stdout) as { tasks: Run[] }).tasks;
  expect(ofMap.map((t) => t.name)).toEqual(Array.from({ length: 45 }, (_, i) => `item[${i}]`));
  const trial = tasks.find((t) => t.name === "trial[1]")!;
  const trialShown = await cairn(["show", trial.runId], { cwd, env });
  expect(trialShown.stdout).toContain(`trial of sweep run ${trial.parentRunId} (trial) of flow run ${flowRunId}\n`);
  expect(one.stdout).toMatch(/\nerror: Error: item seven\n/);
}

describe("cairn show lists the items of maps and sweeps", () => {
  it("on the embedded store", async () => {
    await expectItemsShown({});
  }, 120_000);

  describe("on a real MLflow server", () => {
    const server = useMlflowServer();

    it("reads the same from the server", async () => {
      await expectItemsShown({ MLFLOW_TRACKING_URI: server.uri });
    }, 180_000);

    it("a flow run of 30 maps: a search per map, never more at once than the client's in-flight limit, each map's items under it", async () => {
      const cwd = await tmp("cairn-cli-show-maps-");
      const ran = await cairn(["run", fixture("many-maps.flow.ts"), "--json"], { cwd, env: { MLFLOW_TRACKING_URI: server.uri } });
      expect(ran.code, ran.stderr).toBe(0);
      const flowRunId = (JSON.parse(ran.stdout.split("\n")[0]!) as { runId: string }).runId;
      // Counts the searches under way at the server's door, as a proxy in front of it sees them.
      let now = 0;
      let most = 0;
      let searches = 0;
      const proxy = await startProxy(server.uri, (req, res) => {
        if (!req.url?.includes("/runs/search")) return false;
        searches++;
        most = Math.max(most, ++now);
        res.on("close", () => now--);
        return false;
      });
      try {
        const shown = await cairn(["show", flowRunId], { cwd, env: { MLFLOW_TRACKING_URI: proxy.uri, NO_COLOR: "1" } });
        expect(shown.code, shown.stderr).toBe(0);
        expect(searches).toBeGreaterThanOrEqual(31);
        expect(most).toBeLessThanOrEqual(MAX_IN_FLIGHT);
        const lines = shown.stdout.split("\n");
        for (let m = 0; m < 30; m++) {
          const row = lines.findIndex((l) => l.startsWith(`m${m} `));
          expect(lines.slice(row + 1, row + 3).map((l) => l.split(/ +/).slice(0, 3)), `map m${m}`).toEqual([["", `m${m}[0]`, "FINISHED"], ["", `m${m}[1]`, "FINISHED"]]);
        }
      } finally {
        await proxy.close();
      }
    }, 180_000);
  });
});
