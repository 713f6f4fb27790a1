import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir, uptime } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { currentOwner, formatOwner, ownerIsAlive, ownerIsGone, parseOwner, processStartTime } from "./process-owner.ts";

/** Whether this machine lets us start a process in a PID namespace of its own (root, or user namespaces allowed). */
const canUnshare = spawnSync("unshare", ["-p", "-f", "--mount-proc", "true"]).status === 0;

describe("process owners", () => {
  it("round-trip through their text form, extra parts after it ignored", () => {
    const me = currentOwner();
    expect(parseOwner(formatOwner(me))).toEqual(me);
    expect(parseOwner(`${formatOwner(me)}:ab12cd34`)).toEqual(me);
    expect(parseOwner("host:12:ab12cd34")).toEqual({ host: "host", pid: 12 }); // the older form, without a start time
    expect(parseOwner("host:12:t345:ab12cd34")).toEqual({ host: "host", pid: 12, start: 345 }); // the older form, without a pid space
    expect(parseOwner("host:12:t345:s0badf00d0bad:ab12cd34")).toEqual({ host: "host", pid: 12, start: 345, space: "0badf00d0bad" }); // without a wall-clock start or machine
    expect(parseOwner("host:12:t345:s0badf00d0bad:w1700000000:m0a1b2c:ab12cd34")).toEqual({ host: "host", pid: 12, start: 345, space: "0badf00d0bad", startedAt: 1700000000, machine: "0a1b2c" });
    if (me.space !== undefined) expect(me).toMatchObject({ startedAt: expect.any(Number) });
    for (const bad of ["", "host", "host:x", "host:-3", ":12", 42, undefined]) expect(parseOwner(bad)).toBeUndefined();
  });

  it("a process of this host that ended is gone; this process, a live one and another host's are not", () => {
    const ended = spawnSync(process.execPath, ["-e", ""]).pid!;
    expect(ownerIsGone({ host: hostname(), pid: ended })).toBe(true);
    expect(ownerIsGone(currentOwner())).toBe(false);
    expect(ownerIsGone({ host: hostname(), pid: process.ppid })).toBe(false);
    expect(ownerIsGone({ host: `not-${hostname()}`, pid: ended })).toBe(false);
    const space = currentOwner().space;
    if (space !== undefined) {
      // Another PID namespace of this boot (a container with the host's name): nothing here can tell.
      expect(ownerIsGone({ host: hostname(), pid: process.ppid, space: `${space.slice(0, 6)}0badf0` })).toBe(false);
    }
    expect(ownerIsGone(undefined)).toBe(false);
  });

  it.runIf(currentOwner().space !== undefined)("an owner of another boot id is gone only when it can be an earlier boot of this machine", () => {
    const me = currentOwner();
    const bootedAt = Date.now() - uptime() * 1000;
    // Its pid is a live process here, which says nothing of a process of another boot.
    const otherBoot = { host: me.host, pid: process.ppid, space: `0badf0${me.space!.slice(6)}` };
    const before = Math.floor((bootedAt - 5 * 60_000) / 1000);
    const machine = me.machine !== undefined ? { machine: me.machine } : {};
    // Started, and last seen, before this machine booted, on this machine: its processes are all gone.
    expect(ownerIsGone({ ...otherBoot, startedAt: before, ...machine })).toBe(true);
    expect(ownerIsGone({ ...otherBoot, startedAt: before, ...machine }, { seenAt: before * 1000 + 1000 })).toBe(true);
    // Another machine of this name (a cloned VM, a container given one --hostname) that started since this boot...
    expect(ownerIsGone({ ...otherBoot, startedAt: Math.floor(Date.now() / 1000) - 5, ...machine })).toBe(false);
    // ...or within the clocks' skew of it...
    expect(ownerIsGone({ ...otherBoot, startedAt: Math.floor(bootedAt / 1000) - 5, ...machine })).toBe(false);
    // ...or was seen at work since (a lease renewed, a run started)...
    expect(ownerIsGone({ ...otherBoot, startedAt: before, ...machine }, { seenAt: Date.now() - 1000 })).toBe(false);
    // ...or says another machine id, whenever it started.
    if (me.machine !== undefined) expect(ownerIsGone({ ...otherBoot, startedAt: before, machine: me.machine === "000000" ? "111111" : "000000" })).toBe(false);
    // An owner recorded without its wall-clock start (older Cairn): as its record's time tells, else it cannot be told.
    expect(ownerIsGone(otherBoot)).toBe(false);
    expect(ownerIsGone(otherBoot, { seenAt: before * 1000 })).toBe(true);
    expect(ownerIsGone(otherBoot, { seenAt: Date.now() - 1000 })).toBe(false);
    expect(ownerIsGone(otherBoot, { seenAt: Number.NaN })).toBe(false);
  });

  it.runIf(processStartTime("self") !== undefined)("a pid now used by a process that started at another time is gone (pid reuse)", () => {
    const parent = processStartTime(process.ppid)!;
    expect(ownerIsGone({ host: hostname(), pid: process.ppid, start: parent })).toBe(false);
    expect(ownerIsGone({ host: hostname(), pid: process.ppid, start: parent + 1 })).toBe(true);
  });

  it.runIf(processStartTime("self") !== undefined)("a process killed -9 whose parent does not reap it (a zombie) is gone", async () => {
    // sh starts `sleep 60` in the background, says its pid, and becomes `sleep 120`, which never waits for it.
    const parent = spawn("sh", ["-c", "sleep 60 & echo $!; exec sleep 120"], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      const pid = Number(await new Promise<string>((done) => parent.stdout.once("data", (d: Buffer) => done(d.toString().trim()))));
      const owner = { host: hostname(), pid, start: processStartTime(pid)! };
      expect(ownerIsGone(owner)).toBe(false);
      process.kill(pid, "SIGKILL");
      const state = () => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]![0];
      while (state() !== "Z") await new Promise((r) => setTimeout(r, 10));
      // A real zombie: it still has its pid (kill 0 succeeds) and its start time.
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processStartTime(pid)).toBe(owner.start);
      expect(ownerIsGone(owner)).toBe(true);
      expect(ownerIsGone({ host: owner.host, pid })).toBe(true);
    } finally {
      parent.kill("SIGKILL");
    }
  });

  it.runIf(currentOwner().space !== undefined)("another live process of this machine is alive; this one, an ended one, a reused pid and another pid space's are not", () => {
    const parent = { host: hostname(), pid: process.ppid, start: processStartTime(process.ppid)!, space: currentOwner().space! };
    expect(ownerIsAlive(parent)).toBe(true);
    expect(ownerIsAlive({ ...parent, start: parent.start + 1 })).toBe(false);
    expect(ownerIsAlive({ ...parent, space: "0badf00d0bad" })).toBe(false);
    expect(ownerIsAlive({ host: parent.host, pid: parent.pid, start: parent.start })).toBe(false); // no space recorded: cannot tell
    expect(ownerIsAlive(currentOwner())).toBe(false);
    const ended = spawnSync(process.execPath, ["-e", ""]).pid!;
    expect(ownerIsAlive({ ...parent, pid: ended })).toBe(false);
  });

  it.runIf(currentOwner().space !== undefined)("a process of another PID namespace with this host name is never judged by its pid here", (context) => {
    if (!canUnshare) context.skip("`unshare -p -f --mount-proc` is not permitted here (needs root or user namespaces)");
    // Docker's --network host and Kubernetes' hostNetwork give a container the host's name and pids of its own.
    const script = `import("${new URL("./process-owner.ts", import.meta.url).href}").then((m) => console.log(m.formatOwner()))`;
    const out = spawnSync("unshare", ["-p", "-f", "--mount-proc", process.execPath, "--import", "tsx", "-e", script], { encoding: "utf8" });
    expect(out.status, out.stderr).toBe(0);
    const owner = parseOwner(out.stdout.trim())!;
    expect(owner).toMatchObject({ host: hostname(), pid: 1 }); // the namespace's first process
    expect(owner.space).toBeDefined();
    expect(owner.space).not.toBe(currentOwner().space);
    expect(owner.space!.slice(0, 6)).toBe(currentOwner().space!.slice(0, 6)); // the same boot
    // Here pid 1 is another process, started at another time: it used to look like a reused pid, so the owner looked gone.
    expect(ownerIsGone(owner)).toBe(false);
    expect(ownerIsAlive(owner)).toBe(false);
  });

  it.runIf(currentOwner().space !== undefined)("a live process of another machine with this host name (another boot id) is not gone", (context) => {
    // Another boot id bound over the kernel's in a mount namespace of its own: as a container given
    // this host's name on another machine, or a cloned VM, would record it.
    const file = join(mkdtempSync(join(tmpdir(), "cairn-boot-id-")), "boot_id");
    writeFileSync(file, `${randomUUID()}\n`);
    const script = `import("${new URL("./process-owner.ts", import.meta.url).href}").then((m) => console.log(m.formatOwner()))`;
    const bind = 'mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"';
    const out = spawnSync("unshare", ["-m", "sh", "-c", bind, file, process.execPath, "--import", "tsx", "-e", script], { encoding: "utf8" });
    if (out.status !== 0 && /mount|unshare/.test(out.stderr)) context.skip("`unshare -m` and `mount --bind` are not permitted here (needs root)");
    expect(out.status, out.stderr).toBe(0);
    const owner = parseOwner(out.stdout.trim())!;
    expect(owner.space!.slice(0, 6)).not.toBe(currentOwner().space!.slice(0, 6)); // another boot
    expect(owner.startedAt).toBeGreaterThan(Date.now() / 1000 - 60);
    // It started after this machine booted: no earlier boot's. Before, taken for one: gone.
    expect(ownerIsGone(owner)).toBe(false);
    // The same record, had it started before this boot: an earlier boot of this machine, over.
    expect(ownerIsGone({ ...owner, startedAt: Math.floor((Date.now() - uptime() * 1000) / 1000) - 600 })).toBe(true);
  });
});
