/**
 * A ref to an output a function task did not return is `undefined` (an output may be optional,
 * and an `undefined` value does not survive JSON, so a cache hit lacks the key): not an error,
 * but a warning, once per task and output in a run, naming the task, the output, what it
 * returned and the name likely meant. None for an output present with the value null, nor for
 * one its output schema makes optional.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { flow, grid, map, max, sweep, task } from "cairn-dag";
import { runCollect, statuses, tmp } from "../cache/helpers.ts";
import { cairn, fixture } from "./helpers.ts";

const TAKES =
  'Task "b" takes a.okk, but task "a" returned no output "okk" (its outputs: "accuracy", "ok", "note"): the value passed on to "b" is undefined. Did you mean "ok"? ' +
  'Fix the name, or return "okk" from "a"; an output it may leave out is declared optional in its .output(schema), which keeps this warning away.';
const FLOW_OUTPUT =
  'Flow output "acc" is a.acuracy, but task "a" returned no output "acuracy" (its outputs: "accuracy", "ok", "note"): the value passed on to the flow output is undefined. Did you mean "accuracy"? ';

describe("a ref to an output a function task did not return", () => {
  it("cairn run: the flow runs on with undefined, and a warning says so, once per task and output, none for a null output; again on a cache hit", async () => {
    const cwd = await tmp("cairn-cli-absent-");
    for (const run of ["first", "hit"]) {
      const r = await cairn(["run", fixture("absent-output.flow.ts")], { cwd });
      expect(r.code, run).toBe(0);
      expect(r.stdout, run).toContain(TAKES);
      expect(r.stdout, run).toContain(FLOW_OUTPUT);
      // b takes a.okk twice (ok, again): said once.
      expect(r.stdout.split('returned no output "okk"'), run).toHaveLength(2);
      expect(r.stdout, run).not.toMatch(/no output "note"/);
      expect(r.stdout, run).toContain('Outputs: {"note":null,"got":"undefined"}');
    }
  });

  it("in-process: a warn log event; none for an output its schema makes optional, one for a name its schema does not know", async () => {
    const scored = task("scored")
      .output(z.object({ score: z.number(), label: z.string().optional() }))
      .run(() => ({ score: 1 }));
    const use = task("use")
      .input<{ label: unknown; scor: unknown }>()
      .run((inputs) => ({ label: String(inputs.label), scor: String(inputs.scor) }));
    const f = flow("absent-schema").build(() => {
      const s = scored();
      return { used: use({ label: s.label, scor: (s as any).scor }).label };
    });
    const { result, events, warnings } = await runCollect(f, { root: await tmp(), tracker: false, cache: false });
    expect(statuses(result)).toEqual({ scored: "succeeded", use: "succeeded" });
    expect(result.tasks.use!.outputs).toEqual({ label: "undefined", scor: "undefined" });
    expect(warnings).toEqual([
      'Task "use" takes scored.scor, but task "scored" returned no output "scor" (its outputs: "score"): the value passed on to "use" is undefined. Did you mean "score"? ' +
        'Fix the name, or return "scor" from "scored"; an output it may leave out is declared optional in its .output(schema), which keeps this warning away.',
    ]);
    expect(events.find((e) => e.type === "log" && e.level === "warn")).toMatchObject({ task: "use" });
  });

  it("a map's or sweep's node: judged by the group's own outputs, not its items' task (none for its fields, with failed items too; a typo named as the group's)", async () => {
    // The items' task makes `note` optional: that says nothing of the map's node, whose outputs are `outputs` and `failed`.
    const fit = task("fit")
      .input<{ x: number }>()
      .output(z.object({ score: z.number(), note: z.string().optional() }))
      .run(({ x }) => {
        if (x === 2) throw new Error("x = 2 does not fit");
        return { score: x };
      });
    const f = flow("absent-groups").build(() => {
      const m = map(fit, { over: [1, 2, 3], as: "x", minSuccess: 0.5 });
      const s = sweep(fit, { over: grid({ x: [1, 2, 3] }), select: max("score"), minSuccess: 0.5 });
      return {
        all: m.outputs,
        failed: m.failed,
        note: (m as any).note,
        best: s.best.score,
        bestNote: s.best.note,
        trials: s.trials,
        bset: (s as any).bset,
      };
    });
    const { result, warnings } = await runCollect(f, { root: await tmp(), tracker: false, cache: false });
    expect(result.status).toBe("succeeded");
    expect(result.outputs).toMatchObject({ failed: ["fit[1]"], best: 3 });
    expect(warnings.filter((w) => w.includes("has no output") || w.includes("returned no output"))).toEqual([
      'Flow output "note" is fit.note, but map "fit" has no output "note" (its outputs: "outputs", "failed"): the value passed on to the flow output is undefined. ' +
        'Fix the name: an item\'s outputs are read through "outputs", one entry per item (fit.outputs).',
      'Flow output "bset" is fit-2.bset, but sweep "fit-2" has no output "bset" (its outputs: "outputs", "params", "trial", "metric", "trials"): the value passed on to the flow output is undefined. ' +
        "Fix the name: the best trial's outputs are read as fit-2.best.<output> (the ref fit-2.outputs.<output>).",
    ]);
  });
});
