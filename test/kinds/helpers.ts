import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { OptionError, type RunEvent } from "cairn-dag";

export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
export const fixture = (name: string) => join(FIXTURES, name);

/** The project's venv Python when set up (it has papermill and mlflow), else python3. */
export const VENV_PYTHON = fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
export const hasVenv = existsSync(VENV_PYTHON);

export const tempRoot = () => mkdtemp(join(tmpdir(), "cairn-kinds-"));

/** Run options for tests: nothing tracked, work files in a fresh temp folder. */
export async function runOptions(extra: Record<string, unknown> = {}) {
  return { tracker: false as const, root: await tempRoot(), ...extra };
}

/** True while `pid` is a live process (a zombie, dead but not yet reaped, counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = execFileSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" }).trim();
    return stat !== "" && !stat.startsWith("Z");
  } catch {
    return false; // ps exits 1 when the pid is gone
  }
}

/** Waits until `check()` is true, up to `ms`. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000, every = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return check();
}

/** Collects a run's log events. */
export function logsOf(events: RunEvent[]) {
  return events.filter((e): e is Extract<RunEvent, { type: "log" }> => e.type === "log");
}

/** The OptionError message `declare` throws (a test of options refused at declaration). */
export function refusal(declare: () => unknown): string {
  try {
    declare();
  } catch (error) {
    expect(OptionError.is(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected the options to be refused");
}
