/**
 * A task output too large to be a value (README, "Outputs"): one warning naming the task and the
 * size, with the fix (an artifact); none for a small one; the limit is CAIRN_LARGE_OUTPUT_MB.
 */
import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { largeOutputsFromEnv, LocalStore, OptionError, type RunEvent, runDispatchedTask, type TaskDispatcher } from "@cairn/core";
import { flow, task } from "@cairn/dsl";

const off = { tracker: false, cache: false } as const;

/** The warnings of a run of `bytes`-character outputs from two nodes of one task and one of another. */
async function warningsOf(bytes: number, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const blob = task("blob")
    .input<{ i: number }>()
    .run(({ i }) => ({ text: String(i).padEnd(bytes, "x") }));
  const small = task("small").run(() => ({ ok: true }));
  const f = flow("large-output").build(() => {
    blob({ i: 1 });
    blob({ i: 2 });
    small({});
    return {};
  });
  const run = await f.run({ ...off, env });
  const events: RunEvent[] = [];
  run.on((e) => void events.push(e));
  await run.wait();
  return events.flatMap((e) => (e.type === "log" && e.level === "warn" ? [`${e.task ?? ""}: ${e.message}`] : []));
}

describe("a large task output", () => {
  it("is warned of once per task, naming it and its size, with the fix", async () => {
    const warnings = await warningsOf(11 * 1024 * 1024);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^blob\[?\d*\]?: its output is about 11 MB as JSON, over the 10 MB/);
    expect(warnings[0]).toContain("ctx.artifacts.write(name, data)");
    expect(warnings[0]).toContain("CAIRN_LARGE_OUTPUT_MB");
  });

  it("is not warned of under the limit", async () => {
    expect(await warningsOf(1024 * 1024)).toEqual([]);
  });

  it("takes its limit from CAIRN_LARGE_OUTPUT_MB (0: never), and refuses a value that is no number before the run", async () => {
    expect(await warningsOf(2 * 1024 * 1024, { CAIRN_LARGE_OUTPUT_MB: "1" })).toEqual([expect.stringContaining("about 2.0 MB as JSON, over the 1 MB")]);
    expect(await warningsOf(11 * 1024 * 1024, { CAIRN_LARGE_OUTPUT_MB: "0" })).toEqual([]);
    const f = flow("bad-limit").build(() => ({}));
    await expect(f.run({ ...off, env: { CAIRN_LARGE_OUTPUT_MB: "10MB" } })).rejects.toThrow(OptionError);
    await expect(f.run({ ...off, env: { CAIRN_LARGE_OUTPUT_MB: "10MB" } })).rejects.toThrow(/Expected `CAIRN_LARGE_OUTPUT_MB` to be an integer of MB from 0 to 1000000.*got "10MB"/);
  });

  it("on a worker: a refused limit fails the task there (runDispatchedTask never rejects), and a task is warned of once per run, not once per job", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-large-output-"));
    try {
      const tracker = new LocalStore({ root });
      const blob = task("blob")
        .input<{ i: number }>()
        .run(({ i }) => ({ text: String(i).padEnd(2 * 1024 * 1024, "x") }));
      const f = flow("large-output-dispatched").build(() => (blob({ i: 1 }), blob({ i: 2 }), {}));
      // As a worker: one limit for the flow run, given to each of its jobs.
      const dispatcher = (env: NodeJS.ProcessEnv, settings: { largeOutputs?: ReturnType<typeof largeOutputsFromEnv> | null }): TaskDispatcher => ({
        open: () => {},
        run: (t, signal, log) => runDispatchedTask(t.node, t, { tracker, workDir: root, signal, env, secrets: {}, emit: (e) => e.type === "log" && log(e), ...settings }),
      });
      const bad = { CAIRN_LARGE_OUTPUT_MB: "10MB" };
      const node = f.definition.nodes[0]!;
      const refused = runDispatchedTask(node, { flowName: f.definition.name, params: {}, experimentId: "0", flowRunId: "r1", inputs: { i: 1 } } as never, { tracker, workDir: root, signal: new AbortController().signal, env: bad, emit: () => {} });
      await expect(refused).resolves.toMatchObject({ ok: false, cancelled: false, error: { name: "OptionError", message: expect.stringContaining('got "10MB"') } });
      const shared = { largeOutputs: largeOutputsFromEnv({ CAIRN_LARGE_OUTPUT_MB: "1" }) ?? null };
      const run = await f.run({ root, cache: false, env: {}, dispatcher: dispatcher({ CAIRN_LARGE_OUTPUT_MB: "1" }, shared) });
      const events: RunEvent[] = [];
      run.on((e) => void events.push(e));
      const result = await run.wait();
      expect(result.status).toBe("succeeded");
      expect(events.filter((e) => e.type === "log" && e.level === "warn" && e.message.includes("CAIRN_LARGE_OUTPUT_MB"))).toHaveLength(1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
