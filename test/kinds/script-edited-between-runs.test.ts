/**
 * A long-lived process (an app that calls `f.run()` again and again) declares a script task once,
 * reading its file then: an edit made between two runs, before the task starts, is said as a
 * change since the flow was loaded (not as an edit made while the task ran), and the result the new
 * code makes is not stored under the key of the old. A real Python script, in this process.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { flow, type RunEvent } from "@cairn/dsl";
import { script } from "../../packages/process/src/index.ts";
import { hasVenv, tempRoot, VENV_PYTHON } from "./helpers.ts";

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const STEP = (version: number) => `import json, os, sys\nimport cairn_task\ncairn_task.set_outputs({"score": ${version} * 10 + int(sys.argv[1])})\n`;

describe.skipIf(!hasVenv)("a script edited between two runs of a flow loaded once", () => {
  it("warns that it changed since the flow was loaded, and does not cache the new code's result under the old key", async () => {
    const root = await tempRoot();
    made.push(root);
    const file = join(root, "ver.py");
    await writeFile(file, STEP(1));
    const t = script("t", { file, args: ["{n}"], interpreter: VENV_PYTHON }).input<{ n: number }>().output<{ score: number }>();
    const f = flow("ver").params<{ n: number }>().build(({ params }) => ({ score: t({ n: params.n }).score }));
    const runIt = async (n: number) => {
      const events: RunEvent[] = [];
      const run = await f.run({ root, tracker: false, params: { n } });
      run.on((e) => events.push(e));
      const result = await run.wait();
      const said = events.flatMap((e) => (e.type === "log" && e.level === "warn" ? [e.message] : [])).join("\n");
      return { score: (result.outputs as { score?: number } | undefined)?.score, task: result.tasks.t, said };
    };

    const first = await runIt(1);
    expect(first.score).toBe(11);
    expect(first.task?.status).toBe("succeeded");
    expect(first.said).toBe("");

    // Edited before the next run starts, in the same process: the key still reads version 1.
    await writeFile(file, STEP(2));
    const edited = await runIt(2);
    expect(edited.score).toBe(22);
    expect(edited.task).toMatchObject({ status: "succeeded", recorded: false });
    expect(edited.said).toMatch(/`[^`]*ver\.py` changed since the flow was loaded \(after its cache key read it\); its cache key still uses the old content, so its result is not cached\. Reload the flow to pick up the change\./);
    expect(edited.said).not.toContain("while the task ran");

    // Not stored: the same param runs again (with the same words), rather than being a hit.
    const again = await runIt(2);
    expect(again.task?.status).toBe("succeeded");
    expect(again.said).toContain("changed since the flow was loaded");

    // The old param's entry, made by version 1, is what the key names: taken, but not without a word.
    const old = await runIt(1);
    expect(old.task?.status).toBe("cached");
    expect(old.score).toBe(11);
    expect(old.said).toMatch(/`[^`]*ver\.py` changed since the flow was loaded \(after its cache key read it\); its cache key still uses the old content, so the cached result taken is the old code's\. Reload the flow/);
  }, 120_000);
});
