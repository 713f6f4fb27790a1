import { spawnSync } from "node:child_process";
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
});
