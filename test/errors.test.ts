import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as cache from "@cairn/cache";
import * as core from "@cairn/core";
import * as cli from "@cairn/cli";
import * as dsl from "@cairn/dsl";
import * as processKinds from "@cairn/process";
import * as mlflow from "@cairn/mlflow";
import * as report from "@cairn/report";
import * as worker from "@cairn/worker";
import * as facade from "cairn-dag";
import { NeedsTsxError } from "../packages/cli/src/compile-flow.ts";
// @ts-expect-error: a JavaScript module without types
import { ensureBundle } from "../packages/cli/bin/bundle.mjs";
import { CairnError, CycleError, FlowValidationError, NonRetryableError, flow, task, type TaskEvent } from "@cairn/dsl";

type ErrorClass = { readonly code: string; is(value: unknown): boolean; prototype: Error };

/** Every error class the packages export, by name. */
function errorClasses(): Map<string, ErrorClass> {
  const found = new Map<string, ErrorClass>();
  for (const mod of [cache, core, dsl, processKinds, mlflow, report, worker, cli] as Record<string, unknown>[]) {
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value === "function" && value.prototype instanceof Error) found.set(name, value as unknown as ErrorClass);
    }
  }
  found.set("NeedsTsxError", NeedsTsxError as unknown as ErrorClass);
  return found;
}

/** The classes the README's Errors table names, in its first column. */
function readmeErrorClasses(): string[] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("\n## Errors"), readme.indexOf("\n## ", readme.indexOf("\n## Errors") + 1));
  return [...section.matchAll(/^\| (.+?) \|/gm)].flatMap(([, cell]) => [...cell!.matchAll(/`(\w+)`/g)].map(([, n]) => n!));
}

/** The launcher's own error: `cairn` catches it and starts over through tsx, so no user code meets it. */
const LAUNCHER_ONLY = new Set(["NeedsTsxError"]);

describe("Cairn's errors", () => {
  it("are all Cairn errors, each class with a code of its own", () => {
    const classes = errorClasses();
    expect(classes.size).toBeGreaterThan(40);
    const byCode = new Map<string, string>();
    for (const [name, cls] of classes) {
      expect(Object.hasOwn(cls, "code"), `${name} sets its own code`).toBe(true);
      expect(cls.code, name).toMatch(/^CAIRN_[A-Z_]+$/);
      // As the README says: CAIRN_ and the name in capitals without Error (QueueNeedsSharedTrackerError was CAIRN_QUEUE_TRACKER).
      if (name !== "CairnError") expect(cls.code, name).toBe(`CAIRN_${name.replace(/Error$/, "").replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`);
      expect(byCode.get(cls.code), `${name} and ${byCode.get(cls.code)} share ${cls.code}`).toBeUndefined();
      byCode.set(cls.code, name);
      expect(cls === (CairnError as unknown) || cls.prototype instanceof CairnError, `${name} extends CairnError`).toBe(true);
    }
  });

  it("include every class of the README's error table", () => {
    const named = readmeErrorClasses();
    expect(named.length).toBeGreaterThan(30);
    const classes = errorClasses();
    for (const name of named) expect(classes.get(name)?.code, `${name} has a code`).toMatch(/^CAIRN_/);
  });

  it("are recognised through a subclass's is()", () => {
    const cycle = new CycleError("f", ["a", "b"]);
    expect(FlowValidationError.is(cycle)).toBe(true);
    expect(CycleError.is(cycle)).toBe(true);
    expect(CairnError.is(cycle)).toBe(true);
    expect(CycleError.is(new FlowValidationError("bad", "f"))).toBe(false);
    expect(cycle.code).toBe("CAIRN_CYCLE");
    expect(cache.CacheError.is(cycle)).toBe(false);
    expect(CairnError.is(new cache.CacheBackendError("redis", "redis://h", "get"))).toBe(true);
  });

  it("made by Cairn's bundle pass is() of the sources and the other way round, where instanceof fails", async () => {
    const bundle = (await ensureBundle()) as { files: Record<string, string> };
    const bundled = (await import(bundle.files.core!)) as typeof core;
    expect(bundled.CycleError).not.toBe(CycleError);
    const theirs = new bundled.CycleError("f", ["a", "b"]);
    expect(theirs instanceof CycleError).toBe(false);
    expect(CycleError.is(theirs)).toBe(true);
    expect(FlowValidationError.is(theirs)).toBe(true);
    expect(CairnError.is(theirs)).toBe(true);
    expect(NonRetryableError.is(theirs)).toBe(false);
    expect(bundled.FlowValidationError.is(new CycleError("f", ["a"]))).toBe(true);
    const cli = (await import(bundle.files.cli!)) as { NeedsTsxError: typeof NeedsTsxError };
    expect(cli.NeedsTsxError.is(new NeedsTsxError("x"))).toBe(true);
  });

  it("are exported by cairn-dag, NonRetryableError among them", () => {
    expect(facade.NonRetryableError).toBe(NonRetryableError);
    expect(facade.CairnError).toBe(cache.CairnError);
    expect(core.CairnError).toBe(cache.CairnError);
  });

  it("are exported by cairn-dag, each class of the README's error table (README: import everything from cairn-dag)", () => {
    const exported = facade as unknown as Record<string, unknown>;
    const classes = errorClasses();
    const missing = readmeErrorClasses().filter((name) => !LAUNCHER_ONLY.has(name) && exported[name] !== classes.get(name));
    expect(missing, "README error classes cairn-dag does not export").toEqual([]);
  });

  it("that cairn-dag exports are each in the README's error table, and its internal message helpers are not exported", () => {
    // CairnError, the base of them all, is what the section's first sentence is about.
    const listed = new Set([...readmeErrorClasses(), "CairnError"]);
    const exported = Object.entries(facade as unknown as Record<string, unknown>);
    const unlisted = exported.filter(([name, value]) => typeof value === "function" && value.prototype instanceof Error && !listed.has(name)).map(([name]) => name);
    expect(unlisted, "error classes cairn-dag exports that the README's table leaves out").toEqual([]);
    for (const helper of ["cancelReason", "describeValue"]) {
      expect(helper in facade, `cairn-dag exports ${helper}`).toBe(false);
      expect(helper in dsl, `@cairn/dsl exports ${helper}`).toBe(false);
    }
  });
});

describe("NonRetryableError", () => {
  const off = { tracker: false, cache: false } as const;

  async function runWith(thrown: () => Error) {
    let calls = 0;
    const t = task("t")
      .retries(3, { minDelayMs: 1 })
      .run(() => {
        calls++;
        throw thrown();
      });
    const run = await flow("non-retryable").build(() => (t(), {})).run(off);
    const retrying: TaskEvent[] = [];
    run.on((e) => e.type === "task" && e.status === "retrying" && retrying.push(e));
    const result = await run.wait();
    return { calls, result, retrying };
  }

  it("fails the task at its first attempt, whatever .retries() says", async () => {
    const { calls, result, retrying } = await runWith(() => new NonRetryableError("bad credentials", { cause: new Error("401") }));
    expect(calls).toBe(1);
    expect(retrying).toEqual([]);
    expect(result.status).toBe("failed");
    expect(result.tasks.t!.status).toBe("failed");
    expect(result.tasks.t!.attempts).toBe(1);
    expect(result.tasks.t!.error).toEqual({ name: "NonRetryableError", message: "bad credentials" });
  });

  it("keeps its cause and code, and says it is not retryable", () => {
    const cause = new Error("401");
    const e = new NonRetryableError("bad credentials", { cause });
    expect(e.cause).toBe(cause);
    expect(e.code).toBe("CAIRN_NON_RETRYABLE");
    expect(e.retryable).toBe(false);
    expect(NonRetryableError.is(e)).toBe(true);
  });

  it("is not needed for an error of the user's own that says retryable = false", async () => {
    const { calls, result } = await runWith(() => Object.assign(new Error("quota gone"), { retryable: false }));
    expect(calls).toBe(1);
    expect(result.tasks.t!.error).toEqual({ name: "Error", message: "quota gone" });
  });

  it("made by another copy of Cairn (its bundle) is not retried either", async () => {
    const bundle = (await ensureBundle()) as { files: Record<string, string> };
    const bundled = (await import(bundle.files.core!)) as typeof core;
    const { calls, result } = await runWith(() => new bundled.NonRetryableError("bad credentials"));
    expect(calls).toBe(1);
    expect(result.tasks.t!.error).toEqual({ name: "NonRetryableError", message: "bad credentials" });
  });

  it("leaves a plain Error retried", async () => {
    const { calls, result, retrying } = await runWith(() => new Error("flaky"));
    expect(calls).toBe(4);
    expect(retrying).toHaveLength(3);
    expect(result.tasks.t!.attempts).toBe(4);
  });
});
