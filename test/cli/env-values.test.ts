/**
 * Cairn's and MLflow's variables given values they cannot read: refused before anything runs,
 * exit 2, naming the variable, never read as another value without a word.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("boolean variables", () => {
  // `on`, `2`, `ture` were read as "not strict": a user who asked for strict got the lenient run.
  it.each([["CAIRN_CACHE_STRICT", "ture"], ["CAIRN_CACHE_STRICT", "2"], ["CAIRN_MLFLOW_TRACE", "maybe"], ["CAIRN_NO_AUTORUN", "sure"]])(
    "%s=%s is refused (exit 2) before anything runs",
    async (name, value) => {
      const cwd = await tmp("cairn-cli-env-");
      const r = await cairn(["run", ok, "--no-report"], { cwd, env: { [name]: value } });
      expect(r.stderr).toContain(`OptionError: Expected \`${name}\` to be 1, true, yes or on to turn it on; 0, false, no, off or empty (or unset) to turn it off; any case, got "${value}"`);
      expect(r.code).toBe(2);
      expect(existsSync(join(cwd, ".cairn"))).toBe(false);
    },
  );

  it("CAIRN_CACHE_STRICT=on is strict: a cache store that does not answer fails the run instead of running without it", async () => {
    const r = await cairn(["run", ok, "--no-report"], { env: { CAIRN_CACHE_STRICT: "on", CAIRN_CACHE_URL: "redis://127.0.0.1:1" } });
    expect(r.stderr).not.toMatch(/The run goes on without the shared cache/);
    expect(r.code).not.toBe(0);
  });
});

describe("MLflow variables Cairn cannot use are a usage error (exit 2), not a failed flow (exit 1)", () => {
  // Exit 1 told a CI job that retries on 1 to retry a configuration error for ever.
  it.each([
    [{ MLFLOW_HTTP_REQUEST_MAX_RETRIES: "-1" }, "Expected MLFLOW_HTTP_REQUEST_MAX_RETRIES to be an integer from 0 to 10"],
    [{ MLFLOW_HTTP_REQUEST_TIMEOUT: "10s" }, "MLFLOW_HTTP_REQUEST_TIMEOUT"],
    [{ MLFLOW_TRACKING_INSECURE_TLS: "yes" }, "Expected MLFLOW_TRACKING_INSECURE_TLS to be true, false, 1 or 0"],
    [{ MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER: "yes" }, "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER"],
    [{ CAIRN_MLFLOW_RECORDS_IN_FLIGHT: "0" }, "Expected CAIRN_MLFLOW_RECORDS_IN_FLIGHT to be an integer from 1 to 64"],
    [{ CAIRN_MLFLOW_CONNECTION_REQUESTS: "1.5" }, "CAIRN_MLFLOW_CONNECTION_REQUESTS"],
    [{ MLFLOW_TRACKING_URI: "http://" }, 'MLFLOW_TRACKING_URI is "http://", which does not parse as a URL'],
    [{ MLFLOW_TRACKING_URI: "http://u:p%zz@host" }, "with a `%` that is not followed by two hex digits"],
  ])("%j", async (env, message) => {
    const r = await cairn(["run", ok, "--no-report"], { env: { MLFLOW_TRACKING_URI: "http://127.0.0.1:1", ...env } });
    expect(r.stderr).toContain("cairn: TrackingConfigError: ");
    expect(r.stderr).toContain(message);
    expect(r.code).toBe(2);
  });
});

describe("MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID", () => {
  // A blank name reached the store: "LocalStore.ensureExperiment expects a non-empty experiment name", exit 1.
  it.each([[{ MLFLOW_EXPERIMENT_NAME: "" }], [{ MLFLOW_EXPERIMENT_NAME: "  " }], [{ MLFLOW_EXPERIMENT_ID: " " }]])("%j is unset, as MLflow reads it: the run records into the flow's experiment", async (env) => {
    const cwd = await tmp("cairn-cli-env-");
    const r = await cairn(["run", ok, "--no-report"], { cwd, env });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code, r.stderr).toBe(0);
    const runs = await cairn(["runs", "--experiment", "ok", "--json"], { cwd });
    expect(JSON.parse(runs.stdout)).toHaveLength(1);
  });

  // Reached the store's API: "LocalStore.createRun: "abc" is not an experiment id of the local store; get one from ensureExperiment()", exit 1.
  it.each(["abc", "-1", "../../../escape"])("MLFLOW_EXPERIMENT_ID=%s is refused naming the variable (exit 2)", async (id) => {
    const cwd = await tmp("cairn-cli-env-");
    const r = await cairn(["run", ok, "--no-report"], { cwd, env: { MLFLOW_EXPERIMENT_ID: id } });
    expect(r.stderr).toContain(
      `OptionError: Expected MLFLOW_EXPERIMENT_ID to be an experiment id (16 hex digits, as the embedded store gives them), got ${JSON.stringify(id)}. Unset it, or set MLFLOW_EXPERIMENT_NAME (or --experiment) to name the experiment instead.`,
    );
    expect(r.code).toBe(2);
  });
});

describe("certificate paths that cannot be read", () => {
  // A bare "Error: ENOENT: no such file or directory, open '/nonexistent'", exit 1, naming neither variable.
  it.each([
    ["MLFLOW_TRACKING_SERVER_CERT_PATH", "a PEM CA bundle"],
    ["MLFLOW_TRACKING_CLIENT_CERT_PATH", "one PEM file holding the client certificate and its key"],
  ])("%s=/nonexistent is refused naming the variable (exit 2)", async (name, what) => {
    const missing = join(await tmp("cairn-cli-cert-"), "nonexistent.pem");
    const r = await cairn(["run", ok, "--no-report"], { env: { MLFLOW_TRACKING_URI: "https://127.0.0.1:1", [name]: missing } });
    expect(r.stderr).toContain(`cairn: TrackingConfigError: ${name} is ${missing}, which cannot be read (ENOENT): point it at ${what}, or unset it.`);
    expect(r.code).toBe(2);
  });
});

describe("variable names that are almost one Cairn reads", () => {
  // Ignored without a word: the run used the embedded store.
  it("are said once when cairn starts, naming the one meant; the command goes on", async () => {
    const r = await cairn(["runs"], { env: { CAIRN_CACHE_URI: "redis://127.0.0.1:1", MLFLOW_TRACKING_URL: "http://127.0.0.1:1" } });
    expect(r.stderr.match(/warning/g)).toHaveLength(2);
    expect(r.stderr).toContain("cairn: warning: CAIRN_CACHE_URI is not a variable Cairn or MLflow reads (did you mean CAIRN_CACHE_URL?): it is ignored.\n");
    expect(r.stderr).toContain("cairn: warning: MLFLOW_TRACKING_URL is not a variable Cairn or MLflow reads (did you mean MLFLOW_TRACKING_URI?): it is ignored.\n");
    expect(r.code).toBe(0);
  });

  it("are said once by cairn run, not again by the run it starts (which says them for an app that calls run())", async () => {
    const r = await cairn(["run", ok, "--no-report"], { cwd: await tmp("cairn-cli-env-"), env: { CAIRN_CACHE_URI: "redis://127.0.0.1:1" } });
    // The run's warnings are printed on stdout (plain), the CLI's on stderr: counted in both.
    expect(`${r.stdout}${r.stderr}`.match(/CAIRN_CACHE_URI is not a variable Cairn or MLflow reads/g)).toHaveLength(1);
    expect(r.code).toBe(0);
  });
});

