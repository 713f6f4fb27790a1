/**
 * A write error on the output other than a reader leaving (a full disk: ENOSPC, as /dev/full
 * gives) drops what is left to print: `cairn run` goes on to its run's end and closes its
 * records; every other command says so in one line and exits 1. Never an uncaught stack.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv } from "../cache/helpers.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const flowFile = join(repo, "test/fixtures/ok.flow.ts");
const full = "/dev/full";

/** `cairn ...args` in `cwd` with stdout (and stderr too, when asked) on /dev/full: every write fails with ENOSPC. */
async function cairnIntoFullDisk(args: string[], cwd: string, both = false): Promise<{ code: number | null; stderr: string }> {
  const fd = openSync(full, "w");
  try {
    const child = spawn(process.execPath, [cairnBin, ...args], { cwd, env: childEnv(), stdio: ["ignore", fd, both ? fd : "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((resolveExit, reject) => {
      child.on("error", reject);
      child.on("close", resolveExit);
    });
    return { code, stderr };
  } finally {
    closeSync(fd);
  }
}

async function flowRuns(cwd: string): Promise<Array<{ status: string }>> {
  const r = await cairn(["runs", "--json"], { cwd });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<{ status: string }>;
}

describe.skipIf(!existsSync(full))("output that cannot be written (ENOSPC)", () => {
  it.each([[[] as string[]], [["--json"]]])("cairn run %j finishes its run and closes its records, with one notice", async (flags) => {
    const cwd = await tmp("cairn-cli-enospc-");
    const r = await cairnIntoFullDisk(["run", flowFile, "--no-report", ...flags], cwd);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).toMatch(/^cairn: cannot write to stdout \(ENOSPC: no space left on device, write\); the rest of the output is dropped \(a run goes on to its end and is recorded as usual\)\.\n/);
    expect(r.stderr.match(/cannot write to stdout/g)).toHaveLength(1);
    expect(r.code).toBe(0);
    expect((await flowRuns(cwd)).map((run) => run.status)).toEqual(["FINISHED"]);
  });

  it("with stderr on the full disk too, the run still ends and is recorded", async () => {
    const cwd = await tmp("cairn-cli-enospc-");
    const r = await cairnIntoFullDisk(["run", flowFile, "--no-report"], cwd, true);
    expect(r.code).toBe(0);
    expect((await flowRuns(cwd)).map((run) => run.status)).toEqual(["FINISHED"]);
  });

  it.each([[["--help"]], [["runs"]], [["cache", "ls"]], [["graph", flowFile]], [["run", "--help"]]])("cairn %j exits 1 with one line, no stack", async (args) => {
    const cwd = await tmp("cairn-cli-enospc-");
    const r = await cairnIntoFullDisk(args, cwd);
    expect(r.stderr).toBe("cairn: cannot write to stdout (ENOSPC: no space left on device, write); the rest of the output is dropped (a run goes on to its end and is recorded as usual).\n");
    expect(r.code).toBe(1);
  });

  it("a reader that leaves early (EPIPE) is no error: `cairn --help | true` exits 0, silent", async () => {
    const cwd = await tmp("cairn-cli-epipe-");
    const child = spawn("/bin/sh", ["-c", `"${process.execPath}" "${cairnBin}" --help | true`], { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((resolveExit) => child.on("close", resolveExit));
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });
});
