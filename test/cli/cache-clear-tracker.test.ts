/**
 * `cairn cache clear` and `prune` with MLFLOW_TRACKING_URI reach the server before they remove
 * anything (README, "The `cairn` CLI"). They removed the store's entries first, then failed to
 * remove the index's: the clear was undone, since a run hit the index's entries again.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, htmlServer, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("cairn cache clear and prune reach the tracker before they remove anything", () => {
  let cwd: string;
  let login: Awaited<ReturnType<typeof htmlServer>>;
  let dead: string;
  beforeAll(async () => {
    login = await htmlServer(200);
    dead = `http://127.0.0.1:${await freePort()}`;
    cwd = await tmp("cairn-cli-clear-first-");
    expect((await cairn(["run", ok, "--no-tracking"], { cwd })).code).toBe(0);
  });
  afterAll(() => login?.close());

  const cases: Array<[string, () => NodeJS.ProcessEnv, number, RegExp]> = [
    ["a server that is down", () => ({ MLFLOW_TRACKING_URI: dead }), 3, /TrackerUnreachableError: Cannot reach the MLflow tracking server at http:\/\/127\.0\.0\.1:\d+: connection refused/],
    ["a sqlite: URI", () => ({ MLFLOW_TRACKING_URI: "sqlite:///x.db" }), 2, /UnsupportedTrackingUriError: MLFLOW_TRACKING_URI is "sqlite:\/\/\/x\.db"/],
    ["a timeout that is no number", () => ({ MLFLOW_TRACKING_URI: dead, MLFLOW_HTTP_REQUEST_TIMEOUT: "10s" }), 2, /TrackingConfigError: Expected MLFLOW_HTTP_REQUEST_TIMEOUT to be a number/],
    ["a login page answering 200", () => ({ MLFLOW_TRACKING_URI: login.uri }), 3, /TrackerUnreachableError: .*not JSON \(text\/html\).*login page/],
  ];
  it.each(cases)("with %s: refused, and the entries stay", async (_, env, code, message) => {
    for (const args of [["clear", "--task", "double"], ["clear"], ["prune", "--older-than", "1ms"]]) {
      const r = await cairn(["cache", ...args], { cwd, env: env() });
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.code, args.join(" ")).toBe(code);
      expect(r.stdout).not.toMatch(/Removed/);
      const ls = await cairn(["cache", "ls"], { cwd });
      expect(ls.stdout, `after cache ${args.join(" ")}`).toMatch(/^double\s/m);
    }
  });
});
