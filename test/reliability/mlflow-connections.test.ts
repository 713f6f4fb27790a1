/**
 * An app that runs flow after flow in one process, recording to MLflow behind a proxy that keeps
 * idle connections open (nginx with a long keepalive_timeout): the connections stay as many as
 * the busiest moment needs. Each run made a client with keep-alive agents of its own, never
 * closed: about five sockets a run stayed open until the app met its file limit. A real
 * `mlflow server`; the proxy is a fake only in that it holds idle sockets forever.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { flow, task } from "cairn-dag";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { tmp } from "../cache/helpers.ts";

/** A proxy to `uri` that never closes an idle client connection; `open()` counts the client connections it holds. */
async function holdingProxy(uri: string): Promise<{ uri: string; open(): number; close(): Promise<void> }> {
  const target = new URL(uri);
  let open = 0;
  const proxy = http.createServer((req, res) => {
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  proxy.keepAliveTimeout = 0;
  proxy.on("connection", (socket) => {
    open++;
    socket.on("close", () => open--);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const { port } = proxy.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}`,
    open: () => open,
    close: () =>
      new Promise<void>((r) => {
        proxy.closeAllConnections();
        proxy.close(() => r());
      }),
  };
}

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
}, 120_000);
afterAll(() => server?.stop());

const a = task("a")
  .input<{ n: number }>()
  .run(({ n }) => ({ v: n + 1 }));
const b = task("b")
  .input<{ v: number }>()
  .run(({ v }) => ({ w: v * 2 }));
const f = flow("connections").params<{ n: number }>().build(({ params }) => ({ w: b({ v: a({ n: params.n }).v }).w }));

it("50 runs in one process keep the connections to the server bounded, not a few more each run", async () => {
  const proxy = await holdingProxy(server.uri);
  try {
    const root = await tmp();
    const env = { MLFLOW_TRACKING_URI: proxy.uri };
    const open: number[] = [];
    for (let n = 0; n < 50; n++) {
      const result = await (await f.run({ root, env, cache: false, params: { n } })).wait();
      expect(result.status).toBe("succeeded");
      open.push(proxy.open());
    }
    // Sequential runs reuse what the first runs opened (a few at once: the task runs and the flow's writes overlap).
    expect(open.at(-1)).toBeLessThanOrEqual(12);
    expect(open.at(-1)).toBeLessThanOrEqual(open[9]! + 2);
  } finally {
    await proxy.close();
  }
}, 180_000);
