import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
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
    expect(parseOwner("host:12:t345:s0badf00d0bad:ab12cd34")).toEqual({ host: "host", pid: 12, start: 345, space: "0badf00d0bad" });
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
      // An earlier boot of this machine: its processes are all gone, whatever its pids are now.
      expect(ownerIsGone({ host: hostname(), pid: process.ppid, space: `0badf0${space.slice(6)}` })).toBe(true);
    }
    expect(ownerIsGone(undefined)).toBe(false);
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
});
