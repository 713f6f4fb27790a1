import { Keyv } from "keyv";
import { CacheBackendError } from "../errors.ts";
import type { LeaseBackend } from "../lease.ts";
import { uniqueId } from "./_files.ts";
import { type CacheBackend, entriesOf, jsonSerialization, redactUrl } from "./_backend.ts";

/** The few commands the leases use, typed once (node-redis's own types are a union of client kinds). */
interface LeaseClient {
  set(key: string, value: string, options: { condition: "NX"; expiration: { type: "PX"; value: number } }): Promise<string | null>;
  get(key: string): Promise<string | null>;
  pTTL(key: string): Promise<number>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** @internal Opens a redis store (@keyv/redis) and checks that it answers. */
export async function openRedisBackend(url: string, namespace: string, connectTimeoutMs: number): Promise<CacheBackend> {
  const location = redactUrl(url);
  const { default: KeyvRedis } = await import("@keyv/redis");
  // No `connectionTimeout` here: @keyv/redis never clears that timer, which kept every
  // process alive for its full length after the run. Our own timeout below is cleared.
  const store = new KeyvRedis(url, { namespace, throwOnConnectError: true, throwOnErrors: true });
  // Errors surface as rejections of our calls; the event would only repeat them.
  store.on("error", () => {});
  let client: LeaseClient;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    });
    client = (await Promise.race([store.getClient(), timeout])) as unknown as LeaseClient;
    clearTimeout(timer);
  } catch (error) {
    clearTimeout(timer);
    await store.disconnect(true).catch(() => {});
    throw new CacheBackendError("redis", location, "connect", { cause: error });
  }
  const keyv = new Keyv({ store, namespace, useKeyPrefix: false, throwOnErrors: true, ...jsonSerialization });
  keyv.on("error", () => {});
  return {
    kind: "redis",
    location,
    keyv,
    leases: new RedisLeases(client, `${namespace}-lease:`),
    entries: entriesOf(keyv, store),
    async close() {
      // Forced: a graceful QUIT waited seconds here before the process could exit.
      await store.disconnect(true).catch(() => {});
    },
  };
}

/** Leases as redis keys: SET NX PX to take, compare-and-delete / compare-and-expire scripts to release / renew. */
class RedisLeases implements LeaseBackend {
  constructor(
    private readonly client: LeaseClient,
    private readonly prefix: string,
  ) {}

  private encode(owner: string, token: string): string {
    return JSON.stringify({ owner, token });
  }

  async tryAcquire(key: string, owner: string, ttlMs: number) {
    const token = uniqueId();
    for (let attempt = 0; attempt < 10; attempt++) {
      const start = Date.now();
      const ok = await this.client.set(this.prefix + key, this.encode(owner, token), {
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
    const ok = await this.client.eval(RENEW, { keys: [this.prefix + key], arguments: [token, String(ttlMs)] });
    return Number(ok) === 1 ? now + ttlMs : undefined;
  }

  async release(key: string, token: string): Promise<void> {
    await this.client.eval(RELEASE, { keys: [this.prefix + key], arguments: [token] });
  }

  async peek(key: string) {
    const [value, ttl] = await Promise.all([this.client.get(this.prefix + key), this.client.pTTL(this.prefix + key)]);
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
