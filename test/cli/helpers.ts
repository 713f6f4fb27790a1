/**
 * Helpers of the CLI tests under test/cli/: `cairn` as a real child process (the launcher in
 * packages/cli/bin, as a user runs it), in a fresh working folder, on the embedded store
 * unless the environment names an MLflow server.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, type Exit, repo, start, tmp } from "../cache/helpers.ts";

export { repo, tmp };

/** A fixture of test/cli/fixtures, or of another test folder (`../fixtures/ok.flow.ts`). */
export const fixture = (name: string) => join(repo, "test/cli/fixtures", name);

/** `cairn ...args` in `cwd` (a fresh temp folder when not given), with MLflow and cache variables dropped, plus `env`. */
export async function cairn(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Exit> {
  const cwd = options.cwd ?? (await tmp("cairn-cli-"));
  return start(process.execPath, [cairnBin, ...args], { cwd, env: childEnv(options.env) }).done;
}

/**
 * A real `mlflow server` for the tests of the enclosing `describe` (or file): started before
 * them, stopped after them. Read `uri` inside a test, once the server is up.
 */
export function useMlflowServer(): { readonly uri: string } {
  let server: MlflowServer | undefined;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get uri() {
      if (!server) throw new Error("Expected the MLflow server of useMlflowServer() to be up, but it is not: read `uri` inside a test (it, or a hook), not where the describe is declared.");
      return server.uri;
    },
  };
}

/**
 * A local HTTP server that answers every request with `status` and an HTML page, as something
 * other than MLflow does: a proxy's login page (200), a wrong path prefix (404).
 */
export async function htmlServer(status: number, body = "<html><body>Please sign in</body></html>"): Promise<{ uri: string; close: () => void }> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { "content-type": "text/html" });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}
