/**
 * What the start of `cairn run` records, against a real MLflow server: the user MLflow's own
 * client would name (`mlflow.user` from LOGNAME, USER, ... as `getpass.getuser()` reads them), and,
 * for a cache store that cannot be used, either no run at all (a URL refused without connecting:
 * exit 2) or a FAILED run that says why (strict, and the store does not answer: exit 3).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort } from "../../packages/cache/test/_free-port.ts";
import { cairnBin, childEnv } from "../cache/helpers.ts";
import { cairn, repo, tmp, useMlflowServer } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");
const server = useMlflowServer();

/** The environment of a `cairn` against the server, with no user variable but those of `user`. */
function envOf(experiment: string, user: NodeJS.ProcessEnv = {}, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { MLFLOW_TRACKING_URI: server.uri, MLFLOW_EXPERIMENT_NAME: experiment, LOGNAME: undefined, USER: undefined, LNAME: undefined, USERNAME: undefined, ...user, ...extra };
}

interface ListedRun {
  runId: string;
  status: string;
  tags: Record<string, string>;
}

/** The runs of `experiment` on the server, as `cairn runs --json` lists them. */
async function runsOf(experiment: string): Promise<ListedRun[]> {
  const listed = await cairn(["runs", "--json", "--experiment", experiment], { env: envOf(experiment) });
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as ListedRun[];
}

describe("mlflow.user: as MLflow's own client names the user", () => {
  it.each([
    ["USER", { USER: "alice" }, "alice"],
    ["LOGNAME before USER", { LOGNAME: "bob", USER: "alice" }, "bob"],
    ["USERNAME, the others unset or empty", { LOGNAME: "", USERNAME: "carol" }, "carol"],
  ])("%s", async (_, user, expected) => {
    const experiment = `user-${expected}-${Date.now()}`;
    const r = await cairn(["run", ok], { env: envOf(experiment, user) });
    expect(r.code, r.stderr).toBe(0);
    const [run] = await runsOf(experiment);
    expect(run?.tags["mlflow.user"]).toBe(expected);
  });

  it("a uid with no passwd entry (docker --user 12345) is named by USER, not `unknown`", async (context) => {
    if (process.getuid?.() !== 0) return context.skip(); // only root can start a process as another uid
    const cwd = await tmp("cairn-cli-uid-");
    await chmod(cwd, 0o777);
    const experiment = `user-uid-${Date.now()}`;
    const env = childEnv({ ...envOf(experiment, { USER: "dana" }), HOME: cwd, TMPDIR: cwd });
    const child = spawn(process.execPath, [cairnBin, "run", ok], { cwd, env, uid: 12345, gid: 12345, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const [code] = (await once(child, "exit")) as [number | null];
    const exit = { code, stderr };
    expect(exit.code, exit.stderr).toBe(0);
    const [run] = await runsOf(experiment);
    expect(run?.tags["mlflow.user"]).toBe("dana");
  });
});

describe("a cache store that cannot be used when the run starts", () => {
  it.each([
    ["a scheme that names no store", "mysql://x", /CacheStoreUrlError: Expected the cache URL to start with redis:\/\/.*got "mysql:\/\/x" from CAIRN_CACHE_URL \(unsupported scheme mysql:\)/],
    ["a URL in quotes (from a .env file)", '"redis://127.0.0.1:6379"', /CacheStoreUrlError: .*Its value is in quotes.*Set CAIRN_CACHE_URL without them\./],
  ])("%s: exit 2, and no run is created", async (_, url, message) => {
    const experiment = `cache-url-${Date.now()}`;
    const r = await cairn(["run", ok], { env: envOf(experiment, {}, { CAIRN_CACHE_URL: url }) });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    const listed = await cairn(["runs", "--json", "--experiment", experiment], { env: envOf(experiment) });
    // Nothing recorded: not a run, nor the experiment (a run made the experiment, and ended FAILED in it).
    expect(listed.stderr).toMatch(`No experiment named "${experiment}"`);
    expect(listed.code).toBe(2);
  });

  it("strict, and the store does not answer: exit 3, and the FAILED run says why (cairn show, the cairn.error tag), its password masked", async () => {
    const experiment = `cache-down-${Date.now()}`;
    const url = `redis://cairn:s3cret-pw@127.0.0.1:${await freePort()}`;
    const r = await cairn(["run", ok, "--cache-strict"], { env: envOf(experiment, {}, { CAIRN_CACHE_URL: url }) });
    expect(r.stderr).toMatch(/CacheBackendError: The redis cache at .* failed to connect/);
    expect(r.code).toBe(3);
    const runs = await runsOf(experiment);
    expect(runs.map((run) => run.status)).toEqual(["FAILED"]);
    expect(runs[0]!.tags["cairn.error"]).toMatch(/^CacheBackendError: The redis cache at redis:\/\/cairn:\*\*\*@127\.0\.0\.1:\d+\/? failed to connect/);
    const shown = await cairn(["show", runs[0]!.runId], { env: envOf(experiment) });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^error: CacheBackendError: The redis cache at .* failed to connect/m);
    expect(JSON.stringify(runs) + shown.stdout + r.stderr).not.toContain("s3cret-pw");
  });
});
