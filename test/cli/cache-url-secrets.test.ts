/**
 * A password given in a cache URL's query (`postgres://me@host/db?password=...`, which
 * node-postgres reads as the password) is never printed nor recorded: `cairn run`'s output, the
 * run's records and report under .cairn or on an MLflow server (`cairn.miss_reason`), `cairn cache
 * ls` and `cairn cache clear`. It was shown whole, as only `user:password@` was hidden.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startPostgresServer } from "../../packages/cache/test/postgres-server.ts";
import { startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

/**
 * The password's parts, each distinctive (mixed case: no run id or hash holds one): a quote of
 * each kind, a percent-encoded `@`, and a raw `&` that ends the parameter in the URL, so the part
 * after it reads as a parameter of its own.
 */
const parts = ["Zq7Pw", "Kx4Lq", "Wv8Nm", "Jr9Ht", "Yb5Gs"] as const;
const password = `${parts[0]}"${parts[1]}'${parts[2]}%40${parts[3]}&${parts[4]}=1`;
/** Nothing listens on port 1: the run goes on without the store, saying so with its URL. */
const url = `postgres://cairnadm@127.0.0.1:1/cairn?sslmode=disable&password=${password}`;

/** The text of every file under `dir`. */
async function filesUnder(dir: string): Promise<Array<[string, string]>> {
  const names = await readdir(dir, { recursive: true, withFileTypes: true });
  return Promise.all(names.filter((d) => d.isFile()).map(async (d) => [join(d.parentPath, d.name), await readFile(join(d.parentPath, d.name), "utf8")] as [string, string]));
}

function expectNoSecret(where: string, text: string): void {
  for (const part of parts) expect(text, `${where} shows part of the password`).not.toContain(part);
}

describe("a cache URL's password given as a query parameter", () => {
  it("is shown as `password=***` by cairn run, and is in none of the files the run writes under .cairn", async () => {
    const cwd = await tmp("cairn-cli-url-secret-");
    const r = await cairn(["run", ok], { cwd, env: { CAIRN_CACHE_URL: url } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("The postgres cache at postgres://***@127.0.0.1:1/cairn?sslmode=disable&password=*** failed to connect");
    expectNoSecret("stdout", r.stdout);
    expectNoSecret("stderr", r.stderr);
    const files = await filesUnder(join(cwd, ".cairn"));
    // The task runs' miss reasons (tag cairn.miss_reason) name the store, and the report shows them.
    expect(files.map(([path]) => path).some((path) => path.endsWith("report.html"))).toBe(true);
    expect(files.some(([, text]) => text.includes("password=***"))).toBe(true);
    for (const [path, text] of files) expectNoSecret(path, text);
  });

  it("is in none of cairn cache ls's and cairn cache clear's messages", async () => {
    const cwd = await tmp("cairn-cli-url-secret-");
    for (const args of [["cache", "ls"], ["cache", "clear"]]) {
      const r = await cairn(args, { cwd, env: { CAIRN_CACHE_URL: url } });
      expect(r.code, `cairn ${args.join(" ")}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toContain("postgres://***@127.0.0.1:1/cairn?sslmode=disable&password=***");
      expectNoSecret(`cairn ${args.join(" ")}'s stdout`, r.stdout);
      expectNoSecret(`cairn ${args.join(" ")}'s stderr`, r.stderr);
    }
  });

  it("is in none of the messages and records of a run against a real postgres that answers", async (context) => {
    // Trust auth: the password is read and ignored, and the store opens: its misses name it (kind "new").
    const server = await startPostgresServer();
    if ("skip" in server) return context.skip(server.skip);
    try {
      const cwd = await tmp("cairn-cli-url-secret-");
      const env = { CAIRN_CACHE_URL: `${server.url}?password=${password}` };
      const shown = `${server.url}?password=***`.replace("cairn@", "***@");
      const ls = await cairn(["cache", "ls"], { cwd, env });
      expect(ls.stdout).toContain(`The cache at ${shown} is empty.`);
      const r = await cairn(["run", ok], { cwd, env });
      expect(r.code, r.stderr).toBe(0);
      const files = await filesUnder(join(cwd, ".cairn"));
      expect(files.some(([, text]) => text.includes(`the cache store at ${shown}`))).toBe(true);
      const clear = await cairn(["cache", "clear"], { cwd, env });
      expect(clear.stdout).toContain(`from ${shown}.`);
      for (const [where, text] of [...files, ["output", `${ls.stdout}${ls.stderr}${r.stdout}${r.stderr}${clear.stdout}${clear.stderr}`] as [string, string]]) expectNoSecret(where, text);
    } finally {
      await server.stop();
    }
  });

  it("is in none of the tags and artifacts of the runs a run records on an MLflow server (cairn.miss_reason names the store)", { timeout: 180_000 }, async () => {
    const server = await startMlflowServer();
    try {
      const r = await cairn(["run", ok], { env: { CAIRN_CACHE_URL: url, MLFLOW_TRACKING_URI: server.uri } });
      expect(r.code, r.stderr).toBe(0);
      expectNoSecret("output", `${r.stdout}${r.stderr}`);
      const post = async (path: string, body: unknown) => {
        const response = await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        return (await response.json()) as Record<string, unknown>;
      };
      const { experiments } = (await post("experiments/search", { max_results: 100 })) as { experiments: Array<{ experiment_id: string }> };
      const runs = JSON.stringify(await post("runs/search", { experiment_ids: experiments.map((e) => e.experiment_id), max_results: 1000 }));
      expect(runs).toContain("cairn.miss_reason");
      expect(runs).toContain("password=***");
      expectNoSecret("MLflow's runs", runs);
      // The artifacts the run logged (its report among them), as the server keeps them.
      const artifacts = await filesUnder(join(server.dir, "artifacts"));
      expect(artifacts.some(([path]) => path.endsWith("report.html"))).toBe(true);
      for (const [path, text] of artifacts) expectNoSecret(path, text);
    } finally {
      await server.stop();
    }
  });

  it("holding a raw `@`, is refused without showing any of it (what follows the `@` may be the host or the rest of the password)", async () => {
    const r = await cairn(["cache", "ls"], { env: { CAIRN_CACHE_URL: `postgres://cairnadm@127.0.0.1:1/cairn?password=${parts[0]}@${parts[1]}` } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('got "postgres://***" from CAIRN_CACHE_URL');
    expectNoSecret("stderr", r.stderr);
  });
});
