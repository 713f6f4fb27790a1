/**
 * The crash guard (packages/core/src/run/crash-guard.ts) in a real process, as an app meets it
 * (test/fixtures/crash-guard-modes.ts): vitest's own listeners would take the errors here.
 */
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
