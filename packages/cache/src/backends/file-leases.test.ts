import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir, uptime } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fixture, lineFrom, runTs, startTs } from "../../test/_child.ts";
import { currentOwner } from "../process-owner.ts";
import { fileNameOfKey } from "./_files.ts";
import { FileLeases } from "./file-leases.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-leases-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("FileLeases", () => {
  it("gives a free or expired lease to exactly one of many acquirers in one process", async () => {
    // Separate instances share nothing in memory. Their calls are synchronous, so within one process
    // they take turns; the race between processes is the next test's.
    const contenders = Array.from({ length: 32 }, () => new FileLeases(dir));
    for (let round = 0; round < 40; round++) {
      const key = `key-${round}`;
      if (round % 4 !== 0) {
        await contenders[0]!.tryAcquire(key, "expired", 1);
        await sleep(3);
      }
      const results = await Promise.all(contenders.map((leases, i) => leases.tryAcquire(key, `c${i}`, 60_000)));
      expect(results.filter((r) => r.ok), `round ${round}`).toHaveLength(1);
    }
  });

  it("gives each expired lease to exactly one of four processes stealing it at once", async () => {
    const count = 600;
    // Their holder is gone, as a live holder of this machine keeps an expired lease.
    await runTs(fixture("expired-leases.ts"), [dir, ...Array.from({ length: count }, (_, i) => `key-${i}`)]);
    await sleep(5);
    const go = join(dir, ".go");
    const end = join(dir, ".end");
    const racers = Array.from({ length: 4 }, () => startTs(fixture("lease-stealer.ts"), [dir, go, end, String(count)]));
    // Every racer loaded and spinning before the go, so that they take the same keys at the same time.
    await Promise.all(racers.map((racer) => lineFrom(racer, (l) => l === "ready")));
    const results = racers.map((racer) => lineFrom(racer, (l) => l.startsWith("[")));
    await writeFile(go, "");
    let won: number[];
    try {
      won = (await Promise.all(results)).flatMap((l) => JSON.parse(l) as number[]);
    } finally {
      // Only now may the racers end: no racer leaves before all have tried every key (a finished racer's leases would be free).
      await writeFile(end, "");
    }
    for (const out of await Promise.all(racers.map(({ done }) => done))) expect(out.code, out.stderr).toBe(0);
    expect(won.length).toBe(count);
    expect(new Set(won).size).toBe(count);
  }, 60_000);

  it("never lets a stale releaser remove a newer holder's lease", async () => {
    const leases = new FileLeases(dir);
    const old = await leases.tryAcquire("k", "old", 1);
    if (!old.ok) throw new Error("expected the lease");
    await sleep(5);
    const fresh = await leases.tryAcquire("k", "fresh", 60_000);
    expect(fresh.ok).toBe(true);
    await leases.release("k", old.token);
    expect(await leases.renew("k", old.token, 60_000)).toBeUndefined();
    expect(await leases.peek("k")).toMatchObject({ holder: "fresh" });
  });

  it("removes a live lease at its release, leaving no file behind, for the next acquirer", async () => {
    const leases = new FileLeases(dir);
    const held = await leases.tryAcquire("k", "first", 60_000);
    if (!held.ok) throw new Error("expected the lease");
    expect(await new FileLeases(dir).tryAcquire("k", "second", 60_000)).toMatchObject({ ok: false, holder: "first" });
    await leases.release("k", held.token);
    expect(await readdir(dir)).toEqual([]);
    expect(await new FileLeases(dir).tryAcquire("k", "second", 60_000)).toMatchObject({ ok: true });
  });

  it("counts an unreadable lease file as held for a while, then as expired", async () => {
    const leases = new FileLeases(dir);
    await leases.tryAcquire("setup", "x", 1); // makes the folder
    const path = join(dir, fileNameOfKey("k", ".lease"));
    await writeFile(path, "{not json");
    expect(await leases.tryAcquire("k", "me", 1000)).toMatchObject({ ok: false, holder: "unknown (unreadable lease file)" });
    const { utimes } = await import("node:fs/promises");
    await utimes(path, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    expect(await leases.tryAcquire("k", "me", 1000)).toMatchObject({ ok: true });
  });

  it.runIf(currentOwner().space !== undefined)("takes the lease of a holder of an earlier boot, never of another machine with this host name nor one renewed since this boot", async () => {
    const leases = new FileLeases(dir);
    await leases.tryAcquire("setup", "x", 1); // makes the folder
    const me = currentOwner();
    const beforeBoot = Date.now() - uptime() * 1000 - 5 * 60_000;
    // A lease file as another boot id's holder writes it, unexpired (a year's ttl), its pid a live process here.
    const holdLease = async (key: string, holder: { startedAt: number; machine?: string }, renewedAt: number) => {
      const path = join(dir, fileNameOfKey(key, ".lease"));
      const lease = { owner: "other", token: `token-${key}`, ttlMs: 365 * 86_400_000, acquiredAt: renewedAt, pid: process.ppid, host: hostname(), space: `0badf0${me.space!.slice(6)}`, ...holder };
      await writeFile(path, JSON.stringify(lease));
      await utimes(path, new Date(renewedAt), new Date(renewedAt));
    };
    const machine = me.machine !== undefined ? { machine: me.machine } : {};
    const started = Math.floor(beforeBoot / 1000);
    // Started and last renewed before this machine booted: its holder's boot is over.
    await holdLease("earlier-boot", { startedAt: started, ...machine }, beforeBoot);
    expect(await leases.tryAcquire("earlier-boot", "me", 1000)).toMatchObject({ ok: true });
    // Renewed since this boot: a machine given this host name, at work now.
    await holdLease("renewed", { startedAt: started, ...machine }, Date.now());
    expect(await leases.tryAcquire("renewed", "me", 1000)).toMatchObject({ ok: false, holder: "other" });
    // Started since this boot.
    await holdLease("started-since", { startedAt: Math.floor(Date.now() / 1000) - 5, ...machine }, beforeBoot);
    expect(await leases.tryAcquire("started-since", "me", 1000)).toMatchObject({ ok: false, holder: "other" });
    // Another machine id.
    if (me.machine !== undefined) {
      await holdLease("other-machine", { startedAt: started, machine: me.machine === "000000" ? "111111" : "000000" }, beforeBoot);
      expect(await leases.tryAcquire("other-machine", "me", 1000)).toMatchObject({ ok: false, holder: "other" });
    }
  });

  it("sweeps long-expired leases and stale tombstones", async () => {
    const leases = new FileLeases(dir);
    await leases.tryAcquire("gone", "x", 1);
    await leases.tryAcquire("live", "x", 600_000);
    const { utimes } = await import("node:fs/promises");
    const past = new Date(Date.now() - 10 * 60_000);
    await utimes(join(dir, fileNameOfKey("gone", ".lease")), past, past);
    await writeFile(join(dir, ".end-crashed-token"), "");
    await utimes(join(dir, ".end-crashed-token"), past, past);
    await leases.sweep();
    expect((await readdir(dir)).sort()).toEqual([fileNameOfKey("live", ".lease")]);
  });
});
