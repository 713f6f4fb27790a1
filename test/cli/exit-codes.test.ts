/**
 * What is found before anything runs is a validation error, exit 2 (README, "The `cairn` CLI"):
 * a script or notebook file that does not exist, an MLflow project's missing required
 * parameter or MLproject file, a command template naming no input, an input literal that is not JSON data. The flow fails to build, so no run is created.
 * A service Cairn needs that cannot be used before the flow starts (the tracking server, a shared
 * cache, the queue's Redis) is exit 3: a script tells it from a flow that failed (1).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, fixture, htmlServer, repo, tmp } from "./helpers.ts";

describe("validation errors found before anything runs exit 2", () => {
  it.each([
    ["missing-script.flow.ts", /TaskFileError: Task "train": the file "\.\/no-such-script\.py" does not exist/],
    ["missing-notebook.flow.ts", /TaskFileError: Task "report": the file "\.\/no-such-notebook\.ipynb" does not exist/],
    ["mlproject-missing-param.flow.ts", /MlflowProjectParameterError: .*entry point "touch": the required parameter "count" \(int\) has no value/],
    ["no-mlproject.flow.ts", /MlflowProjectError: .*there is no MLproject file in this folder/],
    ["unknown-placeholder.flow.ts", /UnknownPlaceholderError: Task "greet" uses the placeholder \{name\}, but no input is called "name"/],
    ["bad-flow-name.flow.ts", /OptionError: Expected `flow name` to be a non-empty string of letters, digits, spaces, `_`, `\.` and `-` .*, got "evil\\u001b\]0;title\\u0007" \(string\)\./],
    ["nan-input.flow.ts", /FlowValidationError: Task "t" input "n" at "\(the whole input\)" cannot be serialized: .*got NaN \(number\).* \(in flow "nan-input"\)/],
    ["bad-params-schema.flow.ts", /OptionError: Expected `flow "bad-params" \.params\(\)` to be a Standard Schema \(zod, valibot, \.\.\.\), or no argument with a type parameter \(\.params<T>\(\)\), got an object\./],
    // Found while the flow is built, at the flow file's line (the CLI compiles it; source maps give the .ts line).
    ["task-outside-build.flow.ts", /OptionError: Task "load" was called outside a flow's build function \(at \S*task-outside-build\.flow\.ts:5:1\)\./],
    ["ref-in-string.flow.ts", /OptionError: `params\.dir` is a reference to a value known only when the flow runs \(at \S*ref-in-string\.flow\.ts:11:\d+\): inside build\(\) it cannot be put into a string/],
  ])("cairn run %s", async (file, message) => {
    const cwd = await tmp("cairn-cli-exit-");
    const r = await cairn(["run", fixture(file)], { cwd });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    // Nothing ran: no flow run was recorded.
    expect(existsSync(join(cwd, ".cairn", "experiments"))).toBe(false);
  });

  it.each([["plan"], ["graph"]])("cairn %s of a flow whose script is missing exits 2 too", async (command) => {
    const r = await cairn([command, fixture("missing-script.flow.ts")]);
    expect(r.stderr).toMatch(/TaskFileError/);
    expect(r.code).toBe(2);
  });

  it.each([
    ["a flow file that does not exist", ["worker", "no-such.flow.ts", "--queue", "redis://127.0.0.1:1"], /FlowFileError/],
    ["a queue URL that is not redis://", ["worker", join(repo, "test/fixtures/ok.flow.ts"), "--queue", "http://x"], /QueueUrlError/],
  ])("cairn worker --healthcheck with %s exits 2, as its help says (no worker beats: 1; a Redis that does not answer: 3)", async (_, args, message) => {
    const r = await cairn([...args, "--healthcheck"]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect((await cairn(["help", "worker"])).stdout).toMatch(/1 when no such worker beats; 3 when Redis does not answer; 2 when\s+the flow does not load, URL is not redis:\/\/, or Redis refuses its password/);
  });

  it("cairn worker --healthcheck with a Redis that does not answer exits 3: a service down, not an unhealthy worker", async () => {
    const r = await cairn(["worker", join(repo, "test/fixtures/ok.flow.ts"), "--queue", "redis://127.0.0.1:1", "--healthcheck"]);
    expect(r.stderr).toMatch(/QueueUnreachableError/);
    expect(r.code).toBe(3);
  });

  it("a task that fails while running still exits 1", async () => {
    const r = await cairn(["run", join(repo, "test/fixtures/fails.flow.ts"), "--no-tracking"]);
    expect(r.code).toBe(1);
  });
});

describe("a service Cairn needs that cannot be used before the flow starts: exit 3, not the flow's 1", () => {
  const ok = join(repo, "test/fixtures/ok.flow.ts");
  let login: Awaited<ReturnType<typeof htmlServer>>;
  let notFound: Awaited<ReturnType<typeof htmlServer>>;
  let artifactsOnly: Awaited<ReturnType<typeof htmlServer>>;
  let dead: string;
  beforeAll(async () => {
    login = await htmlServer(200);
    notFound = await htmlServer(404);
    // The answer of `mlflow server --artifacts-only` to every tracking request (injected: only the body matters).
    artifactsOnly = await htmlServer(503, "Endpoint: /api/2.0/mlflow/experiments/get-by-name disabled due to the mlflow server running in `--artifacts-only` mode. To enable tracking server functionality, run `mlflow server` without `--artifacts-only`");
    dead = `http://127.0.0.1:${await freePort()}`;
  });
  afterAll(() => {
    login?.close();
    notFound?.close();
    artifactsOnly?.close();
  });

  it.each([
    ["the tracking server is down", () => ({ MLFLOW_TRACKING_URI: dead }), /Cannot reach the MLflow tracking server at .*: connection refused\. Check that/],
    ["the tracking URI has a wrong path (HTTP 404)", () => ({ MLFLOW_TRACKING_URI: `${notFound.uri}/mlflow` }), /HTTP 404 on \/api\/2\.0\/mlflow\/experiments\/get-by-name; is this an MLflow tracking server\? If it is one behind a path prefix .*`http:\/\/host:port\/mlflow`\. Check that/],
    ["the server is an artifacts-only one", () => ({ MLFLOW_TRACKING_URI: artifactsOnly.uri }), /TrackerUnreachableError: .*it is an MLflow artifacts-only server .*point MLFLOW_TRACKING_URI at the MLflow tracking server/],
    ["a login page answers 200", () => ({ MLFLOW_TRACKING_URI: login.uri }), /TrackerUnreachableError: .*HTTP 200 .*not JSON \(text\/html\).*login page/],
    ["the shared cache does not answer (--cache-strict)", () => ({ CAIRN_CACHE_URL: "redis://127.0.0.1:1", CAIRN_CACHE_STRICT: "1" }), /CacheBackendError: The redis cache at redis:\/\/127\.0\.0\.1:1 failed to connect/],
  ])("cairn run when %s", async (_, env, message) => {
    const cwd = await tmp("cairn-cli-exit3-");
    const r = await cairn(["run", ok], { cwd, env: env() });
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain("?.");
    expect(r.code).toBe(3);
  });

  it("cairn runs and cache ls when the server or the shared cache is down; --help lists every exit code", async () => {
    expect((await cairn(["runs"], { env: { MLFLOW_TRACKING_URI: dead } })).code).toBe(3);
    expect((await cairn(["cache", "ls"], { env: { CAIRN_CACHE_URL: "redis://127.0.0.1:1" } })).code).toBe(3);
    expect((await cairn(["--help"])).stdout).toMatch(/Exit codes: 0 done .*, 1 the flow failed or was cancelled by other than a signal .*\n\s+2 usage.*\n\s+3 a service Cairn needs .*\n\s+130 interrupted/);
  });
});
