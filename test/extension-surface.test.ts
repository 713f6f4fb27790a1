/**
 * What README tells a plugin author to import (a tracker of their own, a kind's run-scoped
 * state, an open cache store) comes from the package they installed, `cairn-dag`, and README's
 * lines say so: a reviewer who extended Cairn from the packed tarballs found these only in
 * @cairn/core and @cairn/cache, packages they never named. `pnpm typecheck` checks the types below.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as cairn from "cairn-dag";
import type { CreateRunOptions, DispatchedOutcome, DispatchedRunSettings, DispatchedTask, LogBatch, LogLineOptions, RunFilter, RunRecord, ScopeKey, TaskDispatcher, TaskLogger, Tracker, TrackerFactory } from "cairn-dag";
import * as kind from "cairn-dag/kind";
import * as mlflowTracker from "cairn-dag/mlflow-tracker";
import * as queue from "cairn-dag/queue";
import * as report from "cairn-dag/report";
import * as testing from "cairn-dag/testing";
import { describe, expect, it } from "vitest";
import { repo } from "./cli/helpers.ts";

/** A tracker's factory and the types of its methods' arguments, named from cairn-dag alone. */
const factory: TrackerFactory = async () => new cairn.NullTracker();
type Arguments = [CreateRunOptions, LogBatch, RunFilter, RunRecord | undefined, ScopeKey<number>, Tracker["createRun"]];

describe("cairn-dag's extension points", () => {
  it("exports what README tells a tracker's, a kind's and an app's author to import", () => {
    expect(typeof cairn.registerTrackerScheme).toBe("function");
    expect(typeof cairn.checkMetric).toBe("function");
    expect(typeof cairn.scopeKey).toBe("function");
    expect(typeof cairn.CacheStore.fromUrl).toBe("function");
    expect(typeof kind.scopeKey).toBe("function");
    expect(typeof factory).toBe("function");
    expectTypesUsed<Arguments>();
  });

  it("exports from subpaths what README tells an app or a tracker's author to import from a package they never named", () => {
    // Under pnpm a project can import only what it installed (cairn-dag): @cairn/* are not hoisted.
    expect(typeof queue.queueDispatcher).toBe("function");
    expect(typeof report.logReport).toBe("function");
    expect(typeof report.buildReport).toBe("function");
    expect(typeof report.readReportData).toBe("function");
    expect(typeof testing.trackerComplianceSuite).toBe("function");
    expect(typeof mlflowTracker.MlflowTracker).toBe("function");
    expect(typeof mlflowTracker.MlflowClient).toBe("function");
  });

  it("runs a flow through a dispatcher of the app's own, built from cairn-dag's TaskDispatcher and runDispatchedTask", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-own-dispatcher-"));
    try {
      const sent: string[] = [];
      const dispatcher: TaskDispatcher = {
        open: () => {},
        run: (task: DispatchedTask, signal, log): Promise<DispatchedOutcome> => {
          sent.push(task.node.id);
          const settings: DispatchedRunSettings = { tracker: new cairn.LocalStore({ root }), workDir: root, signal, secrets: {}, emit: (e) => e.type === "log" && log(e) };
          return cairn.runDispatchedTask(task.node, task, settings);
        },
      };
      const double = cairn.task("double").input<{ x: number }>().run(async ({ x }, ctx) => {
        const line: LogLineOptions = { inLogFile: false };
        const logger: TaskLogger = ctx.logger;
        logger.info("doubling", line);
        return { y: x * 2 };
      });
      const result = await (await cairn.flow("own-dispatcher").build(() => ({ y: double({ x: 21 }).y })).run({ root, cache: false, dispatcher, env: {} })).wait();
      expect(result).toMatchObject({ status: "succeeded", outputs: { y: 42 } });
      expect(sent).toEqual(["double"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("runs a flow on a cache store the app opened with cairn-dag's CacheStore, and leaves it open", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-own-store-"));
    const store = await cairn.CacheStore.fromUrl(undefined, { root });
    try {
      const double = cairn.task("double").input<{ x: number }>().run(async ({ x }) => ({ y: x * 2 }));
      const demo = cairn.flow("own-store").build(() => ({ y: double({ x: 21 }).y }));
      const statuses = async () => {
        const result = await (await demo.run({ tracker: false, root, cache: { store } })).wait();
        return result.tasks.double?.status;
      };
      expect(await statuses()).toBe("succeeded");
      expect(await statuses()).toBe("cached");
      expect((await store.list()).map((entry) => entry.taskName)).toEqual(["double"]); // still open
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("README imports them from cairn-dag, not from packages the user never named", () => {
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    const named = ["registerTrackerScheme(", "scopeKey<", "`CacheStore.fromUrl("];
    const lines = readme.split("\n").filter((line) => named.some((name) => line.includes(name)));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.filter((line) => /`@cairn\/(core|cache)`/.test(line))).toEqual([]);
  });

  it("README names cairn-dag's subpaths, not @cairn/*, for queueDispatcher, the report's functions and ReportRunError", () => {
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    expect(readme).not.toMatch(/from `@cairn\/(worker|report)`|\(`@cairn\/report`\)/);
    expect(readme).toContain("`queueDispatcher` from `cairn-dag/queue`");
    expect(readme).toContain("`beforeEnd: logReport` (from `cairn-dag/report`)");
  });
});

/** Keeps the tuple of types above in use, so that tsc checks that each resolves. */
function expectTypesUsed<T extends unknown[]>(): T | undefined {
  return undefined;
}
