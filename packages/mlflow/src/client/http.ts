/**
 * The MLflow client's HTTP, on node:http and node:https with keep-alive agents. It was axios;
 * axios is slow to load (its fetch adapter's feature tests start undici, and it brings
 * form-data and mime-db), slower than a whole cached flow run's talk with MLflow (BENCHMARKS.md).
 * The client needs little of it: JSON in and out, files streamed both ways, a timeout, TLS
 * options. Retries stay with the client (p-retry). axios remains for http() tasks.
 */
import { type IncomingHttpHeaders, Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions, request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Absolute URL; `query` is added to it. */
  url: string;
  query?: Record<string, unknown> | undefined;
  headers?: Record<string, string> | undefined;
  /** A string is sent with its Content-Length; a stream is piped (set Content-Length yourself). */
  body?: string | Readable | undefined;
  /** `text`: the whole body as a string; `stream`: the response itself, to be read by the caller. */
  responseType: "text" | "stream";
  signal?: AbortSignal | undefined;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  /** A string for `text`; the unread response for `stream`. */
  data: string | Readable;
}

/** What `observe` listeners see: each attempt as it is sent, and each answer. */
export type HttpExchange =
  | { phase: "request"; method: string; url: string }
  | { phase: "response"; method: string; url: string; status: number; data: string | Readable };

/** A network failure: `code` as Node names it (ECONNREFUSED, ECONNRESET, ...), ECONNABORTED for a timeout. */
export class HttpNetworkError extends Error {
  override name = "HttpNetworkError";
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface HttpOptions {
  /** Milliseconds without activity on the socket before the request is abandoned. */
  timeoutMs: number;
  headers?: Record<string, string>;
  tls?: HttpsAgentOptions;
  /**
   * Every this many requests, one asks the server to close its connection when it has answered
   * (`Connection: close`), so that connections are opened anew over a run: 0 never. See
   * `MlflowClientOptions.connectionRequests`.
   */
  connectionRequests?: number;
}

/**
 * The keep-alive connections of the whole process, one pool per server (Node's agents key a pool by
 * host, port and, over https, the TLS options each request carries). Each run builds its own
 * client: with an agent of its own, its idle connections outlived it, and behind a server or proxy
 * that keeps idle connections open an app that ran flow after flow grew by a few sockets a run until
 * it met its file limit. Shared, the runs reuse the connections the ones before them opened. An
 * idle socket does not hold the process open (the agent unrefs it).
 */
const sharedHttp = new HttpAgent({ keepAlive: true });
const sharedHttps = new HttpsAgent({ keepAlive: true });

/** Sends requests to one server (or several) over the process's pooled connections. */
export class HttpTransport {
  private readonly listeners: Array<(e: HttpExchange) => void> = [];
  private sent = 0;

  constructor(private readonly options: HttpOptions) {}

  /** Calls `listener` for every request sent and every response received (tests and benchmarks count requests). */
  observe(listener: (e: HttpExchange) => void): void {
    this.listeners.push(listener);
  }

  request(req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(req.url);
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) url.searchParams.append(k, String(v));
    const headers: Record<string, string> = { ...this.options.headers, ...req.headers };
    if (typeof req.body === "string") headers["Content-Length"] = String(Buffer.byteLength(req.body));
    const every = this.options.connectionRequests ?? 0;
    const closing = every > 0 && ++this.sent % every === 0;
    if (closing) headers["Connection"] = "close";
    for (const l of this.listeners) l({ phase: "request", method: req.method, url: url.href });
    const secure = url.protocol === "https:";
    const send = secure ? httpsRequest : httpRequest;
    return new Promise<HttpResponse>((resolve, reject) => {
      // The TLS options go with each request: the shared agent keeps apart the connections of other CAs and client certificates.
      const agent = secure ? { agent: sharedHttps, ...this.options.tls } : { agent: sharedHttp };
      const r = send(url, { method: req.method, headers, ...agent, ...(req.signal ? { signal: req.signal } : {}) }, (res) => {
        // Node's agent keeps a socket unless the *response* says close: a server that ignores the
        // header, or closes without saying so (the next request would meet a reset), is not
        // given the chance. The socket goes once the answer is read.
        if (closing) res.once("end", () => r.socket?.destroy());
        const done = (data: string | Readable) => {
          const out: HttpResponse = { status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", headers: res.headers, data };
          for (const l of this.listeners) l({ phase: "response", method: req.method, url: url.href, status: out.status, data });
          resolve(out);
        };
        if (req.responseType === "stream") return done(res);
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => reject(networkError(e)));
        res.on("end", () => done(Buffer.concat(chunks).toString("utf8")));
      });
      r.setTimeout(this.options.timeoutMs, () => r.destroy(new HttpNetworkError(`no answer within ${this.options.timeoutMs} ms`, "ECONNABORTED")));
      r.on("error", (e) => reject(networkError(e)));
      if (req.body === undefined || typeof req.body === "string") r.end(req.body);
      else {
        req.body.on("error", (e) => r.destroy(e));
        req.body.pipe(r);
      }
    });
  }

  /** Closes the process's idle pooled connections; requests under way (of any client) go on. */
  close(): void {
    for (const agent of [sharedHttp, sharedHttps]) {
      for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    }
  }
}

function networkError(e: Error & { code?: string }): Error {
  if (e instanceof HttpNetworkError || e.name === "AbortError") return e;
  return new HttpNetworkError(e.message, e.code ?? "");
}
