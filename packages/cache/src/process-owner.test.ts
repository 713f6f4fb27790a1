import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { currentOwner, formatOwner, ownerIsGone, parseOwner, processStartTime } from "./process-owner.ts";

describe("process owners", () => {
  it("round-trip through their text form, extra parts after it ignored", () => {
    const me = currentOwner();
    expect(parseOwner(formatOwner(me))).toEqual(me);
    expect(parseOwner(`${formatOwner(me)}:ab12cd34`)).toEqual(me);
    expect(parseOwner("host:12:ab12cd34")).toEqual({ host: "host", pid: 12 }); // the older form, without a start time
    for (const bad of ["", "host", "host:x", "host:-3", ":12", 42, undefined]) expect(parseOwner(bad)).toBeUndefined();
  });

  it("a process of this host that ended is gone; this process, a live one and another host's are not", () => {
    const ended = spawnSync(process.execPath, ["-e", ""]).pid!;
    expect(ownerIsGone({ host: hostname(), pid: ended })).toBe(true);
    expect(ownerIsGone(currentOwner())).toBe(false);
    expect(ownerIsGone({ host: hostname(), pid: process.ppid })).toBe(false);
    expect(ownerIsGone({ host: `not-${hostname()}`, pid: ended })).toBe(false);
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
});
