/**
 * The crash guard (packages/core/src/run/crash-guard.ts) in a real process, as an app meets it
 * (test/fixtures/crash-guard-modes.ts): vitest's own listeners would take the errors here.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { repo, tsxScript } from "./cache/helpers.ts";

const fixture = join(repo, "test/fixtures/crash-guard-modes.ts");

it("two rejections in one tick both reach an app that listens only for uncaughtException, as unhandledRejection", async () => {
  const exit = await tsxScript(fixture, ["two-rejections"]).done;
  expect(exit.code, exit.stderr).toBe(0);
  expect(exit.json.at(-1)).toEqual({ status: "succeeded", seen: ["r1 unhandledRejection", "r2 unhandledRejection"] });
});

it("with --unhandled-rejections=warn a rejection only warns, a task's own as a stray one: the task goes on, as without Cairn", async () => {
  const exit = await tsxScript(fixture, ["warn"], { NODE_OPTIONS: "--unhandled-rejections=warn" }).done;
  expect(exit.code, exit.stderr).toBe(0);
  expect(exit.json.at(-1)).toEqual({ stray: "succeeded", own: "succeeded" });
  expect(exit.stderr).toContain("from the app");
  expect(exit.stderr).toContain("from the task");
});

it("with --unhandled-rejections=none a rejection, a task's own as a stray one, is silent and fails nothing", async () => {
  const exit = await tsxScript(fixture, ["warn"], { NODE_OPTIONS: "--unhandled-rejections=none" }).done;
  expect(exit.code, exit.stderr).toBe(0);
  expect(exit.json.at(-1)).toEqual({ stray: "succeeded", own: "succeeded" });
  expect(exit.stderr).not.toContain("from the app");
  expect(exit.stderr).not.toContain("from the task");
});

it("with --unhandled-rejections=warn-with-error-code a rejection warns and sets exit code 1, as Node would, and the runs go on", async () => {
  const exit = await tsxScript(fixture, ["warn"], { NODE_OPTIONS: "--unhandled-rejections=warn-with-error-code" }).done;
  expect(exit.json.at(-1)).toEqual({ stray: "succeeded", own: "succeeded" });
  expect(exit.stderr).toContain("from the app");
  expect(exit.stderr).toContain("from the task");
  expect(exit.code).toBe(1);
});

it("process.exit(0) outside a task exits after a run left its wrapper of process.exit and another run followed", async () => {
  const exit = await tsxScript(fixture, ["exit-wrapper"]).done;
  expect(exit.json.at(-1)).toEqual({ exiting: true });
  expect(exit.code, exit.stderr).toBe(0);
});

it.each(["warn", "warn-with-error-code", "none"])(
  "with --unhandled-rejections=%s a task's own rejection lets it go on, but its result is not cached, its run says so, and a warning names it (not under none)",
  async (mode) => {
    const root = await mkdtemp(join(tmpdir(), "cairn-warn-cache-"));
    try {
      const exit = await tsxScript(fixture, ["warn-cache", root], { NODE_OPTIONS: `--unhandled-rejections=${mode}` }).done;
      expect(exit.code, exit.stderr).toBe(mode === "warn-with-error-code" ? 1 : 0);
      const seen = exit.json.at(-1) as { first: string; recorded: boolean; second: string; warnings: string[]; tag: string | null };
      // Both runs computed it: the first stored no entry, so the second is no hit.
      expect(seen).toMatchObject({ first: "succeeded", recorded: false, second: "succeeded", tag: "attempt 1: Error: upload 1 failed" });
      const named = seen.warnings.filter((w) => w.startsWith("uploader: its code left a promise rejection unhandled"));
      if (mode === "none") expect(named).toEqual([]);
      else {
        // One per run, not one per rejection.
        expect(named).toHaveLength(2);
        expect(named[0]).toContain("upload 1 failed");
        expect(named[0]).toContain("its result is not cached");
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
);
