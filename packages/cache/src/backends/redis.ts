import { Keyv } from "keyv";
import { CacheBackendError, CacheStoreUrlError } from "../errors.ts";
import type { LeaseBackend } from "../lease.ts";
import { uniqueId } from "./_files.ts";
import { type CacheBackend, entriesOf, redactUrl, sharedStoreSerialization } from "./_backend.ts";

/** The few commands the leases use, typed once (node-redis's own types are a union of client kinds). */
interface LeaseClient {
  set(key: string, value: string, options: { condition: "NX"; expiration: { type: "PX"; value: number } }): Promise<string | null>;
  get(key: string): Promise<string | null>;
  pTTL(key: string): Promise<number>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
/** Deletes the lease only while its owner is ARGV[1]: between peek and delete, another may have taken it. */
const END_IF_HELD_BY = `local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ok, lease = pcall(cjson.decode, value)
if ok and type(lease) == 'table' and lease.owner == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** What @keyv/redis and node-redis reject with, whatever the reason they could not reach redis. */
const SAYS_NOTHING = new Set([
  "Redis client is not connected or has failed to connect. This is thrown because throwOnConnectError is set to true.",
  "The client is closed",
  "The client is offline",
  "Disconnects client",
]);

/** A command redis has not answered within this long fails, sent or not (see {@link boundCommands}). */
const COMMAND_TIMEOUT_MS = 2000;

/**
 * @internal Opens a redis store (@keyv/redis) and checks that it answers. The client never
 * waits on a dead server: commands sent while it is disconnected fail at once instead of
 * queueing until it is back (node-redis's default, which hung a flow whose redis died), every
 * command, sent or not, fails after {@link COMMAND_TIMEOUT_MS} without an answer (see
 * {@link boundCommands}), and reconnecting gives up after about `connectTimeoutMs`; the next
 * command then connects afresh. `CacheStore` retries a failed operation for a moment.
 */
export async function openRedisBackend(url: string, namespace: string, connectTimeoutMs: number): Promise<CacheBackend> {
  const location = redactUrl(url);
  const { default: KeyvRedis } = await import("@keyv/redis");
  // No `connectionTimeout` here: @keyv/redis never clears that timer, which kept every
  // process alive for its full length after the run. Connecting is bounded by the socket's
  // timeout, the reconnect strategy and the commands' bound instead.
  let store: InstanceType<typeof KeyvRedis>;
  try {
    store = new KeyvRedis(
      {
        url,
        disableOfflineQueue: true,
        socket: { connectTimeout: connectTimeoutMs, reconnectStrategy: reconnectWithin(connectTimeoutMs) },
      },
      { namespace, throwOnConnectError: true, throwOnErrors: true },
    );
  } catch (error) {
    // node-redis reads the URL here and throws synchronously (`TypeError: Invalid pathname`)
    // for one CacheStore.fromUrl let through: a URL error, without a stack.
    throw new CacheStoreUrlError(location, {
      cause: error,
      expected: "a redis cache URL node-redis can read (redis://[user:password@]host:port[/database])",
      reason: error instanceof Error ? error.message : String(error),
    });
  }
  // Errors surface as rejections of our calls; the event says why connecting failed, which
  // @keyv/redis's own rejection ("not connected or has failed to connect") does not.
  let connectError: unknown;
  store.on("error", (error: unknown) => {
    if (error instanceof Error && !SAYS_NOTHING.has(error.message)) connectError = error;
  });
  // Before connecting: the handshake (CLIENT SETINFO, AUTH) is what hangs on a stopped redis.
  boundCommands(store.client as unknown as BoundableClient, COMMAND_TIMEOUT_MS, (error) => (connectError = error));
  // Through @keyv/redis each time, which connects again a client closed by a timed-out command.
  const client = async () => (await store.getClient()) as unknown as LeaseClient & { isReady: boolean };
  try {
    // A timed-out handshake ends connecting without an error (node-redis ignores a failed
    // CLIENT SETINFO), with the client closed: not ready is a failure too.
    if (!(await client()).isReady) throw new Error("not ready");
  } catch (error) {
    await store.disconnect(true).catch(() => {});
    // A database the server does not have is the URL's mistake, not an outage: the run went on without the cache.
    if (connectError instanceof Error && /\bDB index is out of range\b/i.test(connectError.message)) {
      throw new CacheStoreUrlError(location, {
        cause: connectError,
        expected: "the path of a redis URL to be a database number the server has",
        reason: `the server answered "${connectError.message}"`,
        hint: "Give a number below the server's `databases` setting (16 by default: 0 to 15), or leave the path out for database 0.",
      });
    }
    // A command's timeout says its own time; the connect budget is another bound.
    const why =
      connectError instanceof CommandTimeoutError
        ? connectError.message
        : `${connectError instanceof Error ? connectError.message : "no answer"}; gave up after ${connectTimeoutMs} ms`;
    throw new CacheBackendError("redis", location, "connect", { cause: new Error(why, { cause: error }) });
  }
  connectError = undefined;
  // The client's last real error (refused, timed out, closed unexpectedly) says more than these.
  const explain = (error: unknown) => (error instanceof Error && SAYS_NOTHING.has(error.message) && connectError) || error;
  // An entry's ttl is redis's PX alone, judged by redis's clock (see sharedStoreSerialization).
  const keyv = new Keyv({ store, namespace, useKeyPrefix: false, throwOnErrors: true, ...sharedStoreSerialization });
  keyv.on("error", () => {});
  return {
    kind: "redis",
    location,
    keyv,
    leases: new RedisLeases(client, `${namespace}-lease:`),
    entries: entriesOf(keyv, store),
    explain,
    refusal: replyOf,
    async close() {
      // Forced: a graceful QUIT waited seconds here before the process could exit.
      await store.disconnect(true).catch(() => {});
    },
  };
}

/**
 * The text of redis's error reply in `error` (`OOM command not allowed ...`, `READONLY ...`,
 * `WRONGTYPE ...`), else undefined. Known by the class's name along the prototype chain
 * (node-redis's SimpleError and BlobError extend ErrorReply): @redis/client is @keyv/redis's
 * dependency, not one this package may import.
 */
function replyOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  for (let proto: unknown = Object.getPrototypeOf(error); proto && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    if ((proto as { constructor?: { name?: string } }).constructor?.name === "ErrorReply") return error.message;
  }
  return undefined;
}

/** The part of a node-redis 5 client that {@link boundCommands} uses. */
interface BoundableClient {
  readonly isOpen: boolean;
  destroy(): void;
  /** node-redis's own (marked internal): every command, the handshake's and MULTI's too, is added here. */
  _getQueue?(): { addCommand(args: readonly unknown[], options?: unknown): Promise<unknown> };
}

/** A command redis did not answer in time. */
class CommandTimeoutError extends Error {
  override name = "CommandTimeoutError";
  constructor(command: string, ms: number) {
    super(`redis did not answer ${command} within ${ms} ms: it holds the connection but does not reply (stopped, hung or overloaded)`);
  }
}

/**
 * Makes every command of `client` fail when redis has not answered it within `ms`, and then
 * closes the connection. node-redis 5's own `timeout` command option stops counting once the
 * command is written to the socket, and its connect timeout covers only the TCP connect, so a
 * redis that accepts connections but never answers (stopped with SIGSTOP, hung) held a command,
 * and the run, for ever. Closing fails the other commands waiting on that connection at once
 * (they would wait as long), and @keyv/redis connects afresh on the next operation.
 */
function boundCommands(client: BoundableClient, ms: number, onTimeout: (error: Error) => void): void {
  const queue = client._getQueue?.();
  if (typeof queue?.addCommand !== "function") {
    // Refuse rather than run unbounded: a dependency update moved what this wraps.
    throw new Error("@redis/client no longer has the command queue backends/redis.ts bounds (client._getQueue().addCommand): update boundCommands");
  }
  const addCommand = queue.addCommand.bind(queue);
  queue.addCommand = (args, options) => {
    const reply = addCommand(args, options);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new CommandTimeoutError(String(args[0]).toUpperCase(), ms);
        reject(error);
        onTimeout(error);
        try {
          if (client.isOpen) client.destroy();
        } catch {
          // Closed meanwhile: nothing left to close.
        }
      }, ms);
      // The socket keeps the process alive while it waits; this timer need not.
      timer.unref();
    });
    return Promise.race([reply, timedOut]).finally(() => clearTimeout(timer));
  };
}

/**
 * node-redis's reconnect strategy: short pauses (50 ms doubling, at most 400 ms) until
 * `budgetMs` has passed since the connection was lost, then give up with the cause.
 */
function reconnectWithin(budgetMs: number) {
  let since: number | undefined;
  return function (this: unknown, retries: number, cause: Error): number | Error {
    if (retries === 0 || since === undefined) since = Date.now();
    const pause = Math.min(50 * 2 ** retries, 400);
    if (Date.now() + pause - since >= budgetMs) {
      since = undefined;
      return cause;
    }
    return pause;
  };
}

/** Leases as redis keys: SET NX PX to take, compare-and-delete / compare-and-expire scripts to release / renew. */
class RedisLeases implements LeaseBackend {
  constructor(
    /** The connected client, connecting it again when a timed-out command closed it. */
    private readonly client: () => Promise<LeaseClient>,
    private readonly prefix: string,
  ) {}

  private encode(owner: string, token: string): string {
    return JSON.stringify({ owner, token });
  }

  async tryAcquire(key: string, owner: string, ttlMs: number) {
    const token = uniqueId();
    for (let attempt = 0; attempt < 10; attempt++) {
      const start = Date.now();
      const ok = await (await this.client()).set(this.prefix + key, this.encode(owner, token), {
        condition: "NX",
        expiration: { type: "PX", value: ttlMs },
      });
      if (ok === "OK") return { ok: true as const, token: this.encode(owner, token), expiresAt: start + ttlMs };
      const current = await this.peek(key);
      if (current) return { ok: false as const, ...current };
      // It expired or was released between the two calls: try again.
    }
    throw new CacheBackendError("redis", "redis", `acquire the lease on ${key}`, { hint: "It changed hands 10 times while we tried." });
  }

  async renew(key: string, token: string, ttlMs: number): Promise<number | undefined> {
    const now = Date.now();
    const ok = await (await this.client()).eval(RENEW, { keys: [this.prefix + key], arguments: [token, String(ttlMs)] });
    return Number(ok) === 1 ? now + ttlMs : undefined;
  }

  async release(key: string, token: string): Promise<void> {
    await (await this.client()).eval(RELEASE, { keys: [this.prefix + key], arguments: [token] });
  }

  async endIfHeldBy(key: string, holder: string): Promise<boolean> {
    return Number(await (await this.client()).eval(END_IF_HELD_BY, { keys: [this.prefix + key], arguments: [holder] })) === 1;
  }

  async peek(key: string) {
    const client = await this.client();
    const [value, ttl] = await Promise.all([client.get(this.prefix + key), client.pTTL(this.prefix + key)]);
    if (value === null || ttl === -2) return undefined;
    let holder = "unknown";
    try {
      holder = String((JSON.parse(value) as { owner: unknown }).owner);
    } catch {
      // Not ours to judge; report it as held.
    }
    return { holder, expiresAt: ttl < 0 ? Number.POSITIVE_INFINITY : Date.now() + ttl };
  }
}
