/**
 * A server farther away, for benchmarks: an HTTP proxy on 127.0.0.1 that holds each request
 * `delayMs` before passing it to `target` (keep-alive to it), as a round trip to a server in
 * the same region (~20 ms) or another one (~60 ms) would. Only benchmarks use it: what a
 * request's time costs a run when the time is the network's, not the server's CPU.
 *
 *   const proxy = await latencyProxy(server.uri, 20); // proxy.uri in place of server.uri
 *   ...
 *   await proxy.close();
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface LatencyProxy {
  uri: string;
  close(): Promise<void>;
}

export async function latencyProxy(target: string, delayMs: number): Promise<LatencyProxy> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    req.on("end", () =>
      setTimeout(() => {
        const upstream = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.on("error", (error) => res.destroy(error));
        upstream.end(Buffer.concat(body));
      }, delayMs),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
