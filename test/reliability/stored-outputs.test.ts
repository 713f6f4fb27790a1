/**
 * Class 7 of the hardening issue: a task's output reaches the next task in its stored JSON
 * form, whether it was just computed or restored from the cache. The engine runs twice over
 * one embedded store; the downstream task runs both times and reports exactly what it got.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type Artifact, flow, task } from "@cairn/dsl";
import { script } from "@cairn/process";
import { MAX_NESTING_DEPTH, storedForm } from "../../packages/core/src/definition/serializable.ts";

const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

/** Shows what `JSON.stringify` hides: undefined properties, holes, -0, prototypes. */
function describeExactly(v: unknown): unknown {
  if (v === undefined) return "<undefined>";
  if (typeof v === "number" && Object.is(v, -0)) return "<-0>";
  if (Array.isArray(v)) return Array.from({ length: v.length }, (_, i) => (i in v ? describeExactly(v[i]) : "<hole>"));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = Object.getPrototypeOf(v) === null ? { "<proto>": "null" } : {};
    for (const k of Object.keys(v)) out[`key:${k}`] = describeExactly((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** What `JSON.parse(JSON.stringify(x))` gives, described the same way. */
const jsonForm = (v: unknown) => describeExactly(JSON.parse(JSON.stringify(v)));

function awkward(): Record<string, unknown> {
  const bare = Object.create(null) as Record<string, unknown>;
  bare.k = 1;
  bare.gone = undefined;
  // biome-ignore lint/suspicious/noSparseArray: a hole is one of the cases under test
  const holes = [1, , 3];
  return { a: undefined, b: 1, list: [1, undefined, 3], holes, neg: -0, nested: { x: undefined, y: [undefined, { z: undefined }] }, bare };
}

describe("a task's output, fresh and from the cache", () => {
  it("reaches the next task, the flow's outputs and the task result in its stored JSON form both times", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const seen: unknown[] = [];
    const produce = task("produce").run(() => awkward());
    const consume = task("consume")
      .input<{ value: Record<string, unknown> }>()
      .run(({ value }) => {
        seen.push(describeExactly(value));
        return { ok: true };
      });
    const f = flow("stored").build(() => {
      const p = produce({});
      consume({ value: p.$out });
      return { a: p.a, list: p.list, nested: p.nested, whole: p.$out };
    });
    const first = await (await f.run({ root })).wait();
    expect(first.tasks.produce!.status).toBe("succeeded");
    // The consumer runs again on the second run, so that it sees the restored value.
    const second = await (await f.run({ root, cache: { rerun: ["consume"] } })).wait();
    expect(second.tasks.produce!.status).toBe("cached");
    expect(second.tasks.consume!.status).toBe("succeeded");

    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual(jsonForm(awkward()));
    expect(seen[1]).toEqual(seen[0]);
    expect(describeExactly(first.outputs)).toEqual(describeExactly(second.outputs));
    expect(describeExactly(first.tasks.produce!.outputs)).toEqual(describeExactly(second.tasks.produce!.outputs));
    expect(Object.keys(first.outputs!)).toEqual(["a", "list", "nested", "whole"]); // a missing output is `undefined`, as after JSON
  });

  it("-0 is 0 fresh and restored alike (a whole output, a script's -0.0); NaN, ±Infinity, a Date or a BigInt fail the first run, naming the place", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const file = join(root, "negative-zero.mjs");
    await writeFile(file, `import { writeFileSync } from "node:fs";\nwriteFileSync(process.env.CAIRN_OUTPUTS, '{"z": -0.0, "l": [-0]}');\n`);
    const whole = task("whole").run(() => -0);
    const fromScript = script("from-script", { file }).output<{ z: number; l: number[] }>();
    const f = flow("negative-zero").build(() => ({ whole: whole({}).$out, script: fromScript({}).$out }));
    const cold = await (await f.run({ root, env: {} })).wait();
    const warm = await (await f.run({ root, env: {} })).wait();
    expect([cold, warm].map((r) => [r.tasks.whole!.status, r.tasks["from-script"]!.status])).toEqual([["succeeded", "succeeded"], ["cached", "cached"]]);
    for (const r of [cold, warm]) expect(describeExactly(r.outputs)).toEqual({ "key:whole": 0, "key:script": { "key:z": 0, "key:l": [0] } });

    const refused: Array<[string, unknown, RegExp]> = [
      ["NaN", { n: NaN }, /at "n" cannot be serialized: .*got NaN \(number\)/],
      ["Infinity", { n: [-Infinity] }, /at "n\[0\]" cannot be serialized: .*got -Infinity \(number\)/],
      ["Date", { at: new Date(0) }, /at "at" cannot be serialized: .*got a Date instance/],
      ["BigInt", { big: 1n }, /at "big" cannot be serialized: .*got `1` \(bigint\)/],
    ];
    for (const [name, output, message] of refused) {
      const r = await (await flow(`refused-${name}`).build(() => ({ out: task("odd").run(() => output as Record<string, unknown>)({}).$out })).run({ root })).wait();
      expect(r.tasks.odd!.error?.name, name).toBe("NotSerializableError");
      expect(r.tasks.odd!.error?.message, name).toMatch(message);
    }
  });

  it("an own `__proto__` key (as JSON.parse makes) stays an own key: uncached, computed and restored alike", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const seen: unknown[] = [];
    /** What a task can tell about `v`: its own keys, its prototype, and whether `isAdmin` reads through. */
    const report = (v: object) => ({ own: Object.keys(v), plain: Object.getPrototypeOf(v) === Object.prototype, isAdmin: "isAdmin" in v });
    const produce = task("produce").run(() => ({ v: JSON.parse('{"__proto__": {"isAdmin": true}, "k": 2}') as { k: number }, k: 2 }));
    const consume = task("consume")
      .input<{ v: { k: number }; wired: { k: number } }>()
      .run(({ v, wired }) => {
        seen.push({ v: report(v), wired: report(wired) });
        return { ok: true };
      });
    const f = flow("own-proto").build(() => {
      const p = produce({});
      // A literal holding the key around a wire: the wire is filled in on a copy of the literal.
      const wired = { ...(JSON.parse('{"__proto__": {"isAdmin": true}}') as object), k: p.k };
      consume({ v: p.v, wired });
      return { v: p.v };
    });
    const uncached = await (await f.run({ root, cache: false })).wait();
    const cold = await (await f.run({ root })).wait();
    const warm = await (await f.run({ root, cache: { rerun: ["consume"] } })).wait();
    expect([uncached, cold, warm].map((r) => r.tasks.produce!.status)).toEqual(["succeeded", "succeeded", "cached"]);
    const expected = { own: ["__proto__", "k"], plain: true, isAdmin: false };
    expect(seen).toEqual([0, 1, 2].map(() => ({ v: expected, wired: expected })));
    for (const r of [uncached, cold, warm]) expect(report(r.outputs!.v as object)).toEqual(expected);
  });

  it("an own `__proto__` key beside an artifact counts in the next task's cache key: another value under it is a miss", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    let runs = 0;
    const make = task("make").run(async (_, ctx) => ({ file: await ctx.artifacts.write("f.txt", "x") }));
    const consume = task("consume")
      .input<{ cfg: { file: Artifact } }>()
      .run(({ cfg }) => (runs++, { keys: Object.keys(cfg) }));
    // The key of `consume` is made from a copy of its input with the artifact's digest in its place.
    const build = (admin: boolean) =>
      flow("proto-key").build(() => {
        const cfg = { ...(JSON.parse(`{"__proto__": {"admin": ${admin}}}`) as object), file: make({}).file };
        return { keys: consume({ cfg }).keys };
      });
    const first = await (await build(true).run({ root })).wait();
    expect(first.outputs).toEqual({ keys: ["__proto__", "file"] });
    const other = await (await build(false).run({ root })).wait();
    expect(other.tasks.consume!.status, "another value under __proto__ is another key").toBe("succeeded");
    const again = await (await build(false).run({ root })).wait();
    expect(again.tasks.consume!.status).toBe("cached");
    expect(runs).toBe(2);
  });

  it("an own `__proto__` key in an output object that holds an artifact stays an own key: computed and restored alike", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const seen: unknown[] = [];
    // The output's object is copied where its artifact gets its digest: the copy must keep the key.
    const produce = task("produce").run(async (_, ctx) => ({
      cfg: { ...(JSON.parse('{"__proto__": {"isAdmin": true}}') as object), file: await ctx.artifacts.write("f.txt", "x") },
    }));
    const consume = task("consume")
      .input<{ cfg: { file: Artifact } }>()
      .run(({ cfg }) => {
        seen.push({ own: Object.keys(cfg), plain: Object.getPrototypeOf(cfg) === Object.prototype, isAdmin: "isAdmin" in cfg });
        return { ok: true };
      });
    const f = flow("own-proto-artifact").build(() => ({ ok: consume({ cfg: produce({}).cfg }).ok }));
    const cold = await (await f.run({ root })).wait();
    const warm = await (await f.run({ root, cache: { rerun: ["consume"] } })).wait();
    expect([cold, warm].map((r) => r.tasks.produce!.status)).toEqual(["succeeded", "cached"]);
    expect(seen).toEqual([0, 1].map(() => ({ own: ["__proto__", "file"], plain: true, isAdmin: false })));
  });

  it(`a value nested ${MAX_NESTING_DEPTH} deep reaches the next task, computed and restored; a deeper one is refused where it enters, naming the place and the limit`, async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    /** `{ v: { c: { c: ... { leaf: 1 } } } }`, `depth` objects deep in all. */
    const nested = (depth: number) => {
      let o: Record<string, unknown> = { leaf: 1 };
      for (let i = 2; i < depth; i++) o = { c: o };
      return { v: o };
    };
    const produce = task("produce").input<{ depth: number }>().run(({ depth }) => nested(depth));
    const measure = task("measure")
      .input<{ v: unknown }>()
      .run(({ v }) => ({ chars: JSON.stringify(v).length }));
    const deepFlow = (depth: number) => flow("deep").build(() => ({ chars: measure({ v: produce({ depth }).v }).chars }));
    const expected = JSON.stringify(nested(MAX_NESTING_DEPTH).v).length;
    const cold = await (await deepFlow(MAX_NESTING_DEPTH).run({ root })).wait();
    expect(cold.status).toBe("succeeded");
    expect(cold.outputs).toEqual({ chars: expected });
    const warm = await (await deepFlow(MAX_NESTING_DEPTH).run({ root, cache: { rerun: ["measure"] } })).wait();
    expect([warm.tasks.produce!.status, warm.tasks.measure!.status, warm.outputs]).toEqual(["cached", "succeeded", { chars: expected }]);

    // One level more, and far more: the producer fails, not its consumer with a bare stack overflow.
    for (const depth of [MAX_NESTING_DEPTH + 1, 5000]) {
      const r = await (await deepFlow(depth).run({ root })).wait();
      expect(r.tasks.produce!.status).toBe("failed");
      expect(r.tasks.produce!.error?.name).toBe("NotSerializableError");
      expect(r.tasks.produce!.error?.message).toMatch(new RegExp(`^Task "produce" output at "v\\.c\\.c\\.c.*" cannot be serialized: .* nested more than ${MAX_NESTING_DEPTH} levels deep`));
      expect(r.tasks.measure!.status).toBe("skipped");
    }
    // A param or an input literal as deep is refused before anything runs.
    const withParam = flow("deep-param").params<{ cfg: unknown }>().build(({ params }) => ({ chars: measure({ v: params.cfg }).chars }));
    await expect(withParam.run({ root, params: { cfg: nested(100_000) } })).rejects.toThrow(/Flow "deep-param" params at "cfg\.v\.c\.c.*nested more than 1000 levels deep/);
    const literal = flow("deep-literal").build(() => ({ chars: measure({ v: nested(100_000) }).chars }));
    expect(() => literal.graph()).toThrow(/Task "measure" input "v" at "v\.c\.c.*nested more than 1000 levels deep/);
  });

  it("a process's CAIRN_OUTPUTS nested deeper than the limit is refused as a function's output is, naming the task and the place, not by a stack overflow", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const file = join(root, "deep-out.mjs");
    await writeFile(
      file,
      `import { writeFileSync } from "node:fs";\nconst d = Number(process.argv[2]);\nwriteFileSync(process.env.CAIRN_OUTPUTS, '{"v":' + "[".repeat(d) + "1" + "]".repeat(d) + "}");\n`,
    );
    const deep = script("deep", { file, args: ["{depth}"] })
      .input<{ depth: number }>()
      .output<{ v: unknown }>();
    const use = task("use")
      .input<{ v: unknown }>()
      .run(({ v }) => ({ ok: typeof v }));
    for (const depth of [MAX_NESTING_DEPTH + 1, 5000]) {
      const r = await (await flow("deep-process").build(() => ({ ok: use({ v: deep({ depth }).v }).ok })).run({ root, env: {} })).wait();
      expect(r.tasks.deep!.status).toBe("failed");
      expect(r.tasks.deep!.error?.name).toBe("NotSerializableError");
      expect(r.tasks.deep!.error?.message).toMatch(new RegExp(`^Task "deep" output at "v\\[0\\]\\[0\\].*" cannot be serialized: .* nested more than ${MAX_NESTING_DEPTH} levels deep`));
      expect(r.tasks.use!.status).toBe("skipped");
    }
  });

  it("an output schema's transformed value is stored in the same form, and must still be JSON data", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-stored-"));
    scratch.push(root);
    const withSchema = task("schema")
      .output(z.object({ n: z.number().transform((n) => (n === 0 ? -0 : n)), opt: z.string().optional() }))
      .run(() => ({ n: 0, opt: undefined }));
    const bad = task("to-date")
      .output(z.object({ at: z.string().transform((s) => new Date(s)) }))
      .run(() => ({ at: "2026-01-01" }) as never); // the schema takes a string and returns a Date
    const r = await (
      await flow("schemas")
        .build(() => ({ s: withSchema({}).$out, d: bad({}).at }))
        .run({ root, failurePolicy: "continue" })
    ).wait();
    expect(describeExactly(r.tasks.schema!.outputs)).toEqual({ "key:n": 0 });
    expect(r.tasks["to-date"]!.status).toBe("failed");
    expect(r.tasks["to-date"]!.error?.name).toBe("NotSerializableError");
    expect(r.tasks["to-date"]!.error?.message).toMatch(/Task "to-date" output, as its output schema returned it, at "at"/);
  });
});

describe("storedForm", () => {
  it("equals JSON's round trip on awkward values", () => {
    const v = awkward();
    expect(describeExactly(storedForm(v))).toEqual(jsonForm(v));
    const proto = JSON.parse('{"__proto__": {"x": 1}, "y": [null]}') as Record<string, unknown>;
    const withUndefined = { ...proto, z: undefined };
    expect(Object.keys(storedForm(withUndefined))).toEqual(["__proto__", "y"]);
    expect(Object.getPrototypeOf(storedForm(withUndefined))).toBe(Object.prototype);
  });

  it("returns the value itself when it is in stored form already (no copy per task)", () => {
    const plain = { a: 1, b: [1, "x", null, { c: true }], d: { kind: "cairn.artifact", path: "/p", artifactPath: "p" } };
    expect(storedForm(plain)).toBe(plain);
    const deep = { keep: { same: [1] }, drop: undefined };
    const out = storedForm(deep) as Record<string, unknown>;
    expect(out).not.toBe(deep);
    expect(out.keep).toBe(deep.keep); // unchanged branches are shared, not copied
  });
});
