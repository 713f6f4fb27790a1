/**
 * Mistakes a user makes writing a flow's build function, each refused where it is made, with a
 * message that says what, where (the flow file's line) and how to fix it, instead of a silent
 * wrong result: a reference put into a string, a literal output that is not JSON data, two
 * tasks of one name from one factory, a `-p` no one reads, a task called outside build(), an
 * `after` node of another flow, a typo in `after`, a clashing `{ id }`.
 */
import { isPlainObject } from "@cairn/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  DuplicateNodeError,
  FlowValidationError,
  NotSerializableError,
  OptionError,
  ParamError,
  UnknownNodeError,
  flow,
  list,
  map,
  max,
  sweep,
  task,
  when,
  type InferOutput,
  type Node,
} from "cairn-dag";

const off = { tracker: false, cache: false } as const;

/** What `fn` throws (undefined when it does not). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

const echo = task("echo")
  .input<{ value: unknown }>()
  .run(({ value }) => ({ value }));
const count = task("count").run(() => ({ rows: 5, name: "data" }));

describe("a reference put into a string or used in arithmetic inside build()", () => {
  it.each([
    ["a param in a template literal", "params.dir", "dir", ({ params }: { params: any }) => echo({ value: `${params.dir}/train.csv` })],
    ["a node's output in a template literal", "count.rows", "rows", () => echo({ value: `rows=${count().rows}` })],
    ["a node's output in arithmetic", "count.rows", "rows", () => echo({ value: (count().rows as unknown as number) * 2 })],
    ["a param compared to a number", "params.dir", "dir", ({ params }: { params: any }) => echo({ value: params.dir > 3 })],
    ["a whole node in a string", "count", "count", () => echo({ value: String(count()) })],
    ["the flow's params in a string", "params", "params", ({ params }: { params: any }) => echo({ value: `${params}` })],
  ])("%s is an OptionError naming the reference, the flow file's line and the fix, not the text [object Object]", (_, what, input, build) => {
    const error = thrown(() => flow("refs").params<{ dir: string }>().build((f) => (build(f), {})));
    expect(OptionError.is(error), String(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain(`\`${what}\` is a reference to a value known only when the flow runs (at test/build-mistakes.test.ts:`);
    expect(message).toContain("inside build() it cannot be put into a string, used in arithmetic or compared");
    expect(message).toContain(`Pass it to a task as an input (\`{ ${input}: ${what} }\`) and build the string, or compute with it, in that task's function.`);
    expect(message).not.toContain("[object Object]");
  });

  it("a sweep's best output in a string too", () => {
    const error = thrown(() =>
      flow("best").build(() => {
        const fit = task("fit").input<{ lr: number }>().run(({ lr }) => ({ score: lr }));
        const s = sweep(fit, { over: list([{ lr: 1 }, { lr: 2 }]), select: max("score") });
        return { v: echo({ value: `${s.best}` }).value };
      }),
    );
    expect((error as Error).message).toMatch(/^`fit\.best` is a reference to a value known only when the flow runs/);
  });

  it("leaves references as they were everywhere else: inputs, nested in objects and arrays, conditions, map lists, outputs", async () => {
    const f = flow("wired")
      .params(z.object({ dir: z.string().default("data"), on: z.boolean().default(true), items: z.array(z.number()).default([1, 2]) }))
      .build(({ params }) => {
        const c = count();
        const nested = echo({ value: { dir: params.dir, list: [c.rows, { name: c.name }], whole: c } }, { if: params.on });
        const gated = echo({ value: c.rows }, { id: "gated", if: when(c.rows, (n) => n > 3) });
        const each = map(echo, { over: params.items, as: "value" });
        return { nested: nested.value, gated: gated.value, each: each.outputs, dir: params.dir };
      });
    const inputs = f.definition.nodes.find((n) => n.id === "echo")!.inputs;
    const ref = (inputs.value as { dir: unknown }).dir;
    // Invisible to JSON, Object.keys and isPlainObject, which hashing and storing go by.
    expect(JSON.stringify(ref)).toBe(`{"__cairnRef":true,"source":"param","target":"dir","path":[],"buildId":${(ref as { buildId: number }).buildId}}`);
    expect(Object.keys(ref as object)).toEqual(["__cairnRef", "source", "target", "path", "buildId"]);
    expect(isPlainObject(ref)).toBe(true);
    expect(Object.isFrozen(ref)).toBe(true);
    const outputs = await (await f.run({ tracker: false, cache: true, root: await tmpRoot(), params: { dir: "d" } })).outputs();
    expect(outputs).toEqual({
      nested: { dir: "d", list: [5, { name: "data" }], whole: { rows: 5, name: "data" } },
      gated: 5,
      each: [{ value: 1 }, { value: 2 }],
      dir: "d",
    });
  });
});

describe("literal flow outputs the build function returns", () => {
  class Model {
    constructor(public w = 1) {}
  }
  it.each([
    ["a class instance", { m: new Model() }, "m", /got a Model instance/],
    ["a function, nested", { r: { f: () => 1 } }, "r", /Flow output "r" at "f" cannot be serialized.*got a function/],
    ["NaN", { n: NaN }, "n", /Flow output "n" at "\(the whole output\)" cannot be serialized.*got NaN \(number\)/],
    ["a BigInt", { b: 1n }, "b", /Flow output "b" at "\(the whole output\)" cannot be serialized.*got `1` \(bigint\)/],
    ["a Date in an array", { d: [new Date(0)] }, "d", /Flow output "d" at "\[0\]" cannot be serialized.*got a Date instance/],
  ])("are refused like input literals when the flow is checked: %s", async (_, outputs, name, message) => {
    const f = flow("lit-out").build(() => outputs as Record<string, unknown>);
    const error = thrown(() => f.graph());
    expect(FlowValidationError.is(error)).toBe(true);
    expect(NotSerializableError.is((error as Error).cause)).toBe(true);
    expect((error as Error).message).toContain(`Flow output "${name}"`);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain('(in flow "lit-out")');
    await expect(f.run(off)).rejects.toThrow(FlowValidationError);
  });

  it("JSON data, refs inside it, and an undefined output stay allowed", async () => {
    const f = flow("ok-out").build(() => ({ a: 1, b: { c: [true, null, "x"] }, rows: count().rows, u: undefined }));
    expect(await (await f.run(off)).outputs()).toEqual({ a: 1, b: { c: [true, null, "x"] }, rows: 5 });
  });
});

describe("two tasks of one name from one factory, in one flow", () => {
  const makeScale = (factor: number) =>
    task("scale")
      .input<{ x: number }>()
      .run(({ x }) => ({ y: x * factor }));

  it("are refused at the second call: they would share cache entries, and one get the other's result", () => {
    const [double, triple] = [makeScale(2), makeScale(3)];
    const error = thrown(() => flow("factory").build(() => ({ d: double({ x: 10 }).y, t: triple({ x: 10 }).y })));
    expect(OptionError.is(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /^Flow "factory" uses two different tasks named "scale" with the same code \(at test\/build-mistakes\.test\.ts:\d+:\d+\): their functions differ only in what they close over/,
    );
    expect((error as Error).message).toContain("Give each its own name (task(`scale-${arg}`) in the factory) or .version(), or pass what differs as an input.");
  });

  it("are allowed with a version, a cache key or a name of their own, and a task with its settings copies (.retries()) always", async () => {
    const [double, triple] = [makeScale(2), makeScale(3)];
    const versioned = flow("versioned").build(() => ({ d: double.version("x2")({ x: 10 }).y, t: triple.version("x3")({ x: 10 }).y }));
    expect(await (await versioned.run(off)).outputs()).toEqual({ d: 20, t: 30 });
    expect(() => flow("keyed").build(() => (double.cache({ key: "2" })({ x: 1 }), triple.cache({ key: "3" })({ x: 1 }), {}))).not.toThrow();
    const copies = flow("copies").build(() => ({ a: double({ x: 1 }).y, b: double.retries(2).timeout(1000)({ x: 2 }).y, c: map(double, { over: [3], as: "x" }).outputs }));
    expect(await (await copies.run(off)).outputs()).toEqual({ a: 2, b: 4, c: [{ y: 6 }] });
  });
});

describe("a flow without a params schema", () => {
  const dbl = task("dbl")
    .input<{ n: number }>()
    .run(({ n }) => ({ doubled: n * 2 }));
  const shows = task("shows").run((_, { params }) => ({ flag: params.flag }));
  const typed = flow("typed")
    .params<{ n: number; flag: boolean }>()
    .build(({ params }) => ({ d: dbl({ n: params.n }).doubled, f: shows().flag }));

  it("refuses, without a params type either, a param that neither its build function nor a task reads, with a ParamError naming the one likely meant", async () => {
    const untyped = flow("untyped").build(({ params }: { params: any }) => ({ d: dbl({ n: params.n }).doubled, f: shows().flag }));
    const error = await untyped.run({ ...off, params: { n: 2, flg: true } }).catch((e: unknown) => e);
    expect(ParamError.is(error)).toBe(true);
    expect((error as ParamError).param).toBe("flg");
    expect((error as Error).message).toBe(
      'Flow "untyped" has no param "flg" (did you mean "flag"?): neither its build function nor any of its tasks reads it. The params it reads: flag, n. ' +
        "Without a params schema, a flow takes the params it reads; declare them with .params(schema) to have them checked and defaulted.",
    );
    const none = flow("none").build(() => ({ rows: count().rows }));
    await expect(none.run({ ...off, params: { lr: 0.5 } })).rejects.toThrow(/Flow "none" has no param "lr": .*The params it reads: \(none\)\./);
  });

  it("takes, with its params typed by .params<T>(), a param of the type that nothing reads, and warns naming it", async () => {
    // The type makes the caller give `note` (leaving it out fails tsc): a refusal would leave no call that both compiles and runs.
    const t = task("t")
      .input<{ a: number }>()
      .run(({ a }) => ({ v: a + 1 }));
    const f = flow("typed-note")
      .params<{ a: number; note: string }>()
      .build(({ params }) => ({ v: t({ a: params.a }).v }));
    const run = await f.run({ ...off, params: { a: 1, note: "x" } });
    const warnings: string[] = [];
    run.on((e) => void (e.type === "log" && e.level === "warn" && warnings.push(e.message)));
    expect(await run.outputs()).toEqual({ v: 2 });
    expect(warnings).toEqual([
      'Flow "typed-note" does not read param "note": neither its build function nor any of its tasks reads it, so it changes nothing in this run (it is recorded with the others). ' +
        "The params it reads: a. Its params are typed with .params<T>() only, so it is taken; wire it into a task, or drop it from the type and the run's params.",
    ]);
    // A param the flow reads gets no warning.
    const quiet = await typed.run({ ...off, params: { n: 2, flag: true } });
    const said: string[] = [];
    quiet.on((e) => void (e.type === "log" && e.level === "warn" && said.push(e.message)));
    await quiet.outputs();
    expect(said).toEqual([]);
  });

  it("takes the params its build function wires in (inputs, conditions, map lists, outputs) and those its tasks read through ctx", async () => {
    expect(await (await typed.run({ ...off, params: { n: 2, flag: true } })).outputs()).toEqual({ d: 4, f: true });
    const wired = flow("wired-params").build(({ params }: { params: any }) => {
      const each = map(echo, { over: params.items, as: "value" });
      const gated = echo({ value: 1 }, { if: when(params.gate, (g: boolean) => g) });
      return { each: each.outputs, gated: gated.value, out: params.out };
    });
    const outputs = await (await wired.run({ ...off, params: { items: [1], gate: true, out: "o" } })).outputs();
    expect(outputs).toEqual({ each: [{ value: 1 }], gated: 1, out: "o" });
  });

  it("takes any param when a task's reads cannot be told (its context handed on whole)", async () => {
    const helper = (ctx: { params: Record<string, unknown> }) => ({ keys: Object.keys(ctx.params) });
    const whole = task("whole").run((_, ctx) => helper(ctx));
    const f = flow("whole").build(() => ({ keys: whole().keys }));
    expect(await (await f.run({ ...off, params: { anything: 1 } })).outputs()).toEqual({ keys: ["anything"] });
  });
});

describe("a task called outside a build function, an async build function", () => {
  it("is an OptionError (the flow is invalid: exit 2) naming the flow file's line", () => {
    const error = thrown(() => count());
    expect(OptionError.is(error)).toBe(true);
    expect((error as Error).message).toMatch(/^Task "count" was called outside a flow's build function \(at test\/build-mistakes\.test\.ts:\d+:\d+\)\. Call tasks inside/);
    const asyncBuild = thrown(() => flow("m10").build((async () => ({})) as never));
    expect(OptionError.is(asyncBuild)).toBe(true);
    expect((asyncBuild as Error).message).toMatch(/^The build function of flow "m10" returned a Promise \(at test\/build-mistakes\.test\.ts:\d+:\d+\)\. build\(\) must be synchronous/);
    const nested = thrown(() => flow("outer").build(() => (flow("inner").build(() => ({})), {})));
    expect(OptionError.is(nested)).toBe(true);
    expect((nested as Error).message).toMatch(/^Flow "inner" was built inside the build function of flow "outer" \(at test\/build-mistakes\.test\.ts:\d+:\d+\)/);
  });
});

describe("`after`", () => {
  it("refuses a node of another flow, which would bind to this flow's node of the same id", () => {
    let leaked: Node<InferOutput<typeof count>> | undefined;
    flow("other").build(() => ((leaked = count()), {}));
    const error = thrown(() => flow("mine").build(() => (count(), echo({ value: 1 }, { after: [leaked!] }), {})));
    expect(UnknownNodeError.is(error)).toBe(true);
    expect((error as Error).message).toMatch(
      /^Task "echo" option `after` names node "count" of another flow's build function, not one of flow "mine"'s own\. .* \(at test\/build-mistakes\.test\.ts:\d+:\d+\)$/,
    );
    // This flow's own node, by handle or by id, is fine.
    expect(() => flow("own").build(() => { const c = count(); echo({ value: 1 }, { after: [c, "count"] }); return {}; }).graph()).not.toThrow();
  });

  it("names the node likely meant for an id that is no node's", () => {
    const f = flow("typo").build(() => (task("prep").run(() => ({}))(), echo({ value: 1 }, { after: ["perp"] }), {}));
    const error = thrown(() => f.graph());
    expect(UnknownNodeError.is(error)).toBe(true);
    expect((error as Error).message).toBe(
      'Task "echo" option `after` names node "perp", which is not part of flow "typo" (did you mean "prep"?). ' +
        "Name a node of this flow: the node a task call returned, or its id (the task's name, then name-2, name-3, ..., or the { id } it was given).",
    );
  });
});

describe("messages", () => {
  it("a clash of an { id } with the id a further call gets says so, and suggests no `load-2-2`", () => {
    const error = thrown(() => flow("dup").build(() => (count({}, { id: "count-2" }), count(), count(), {})));
    expect(DuplicateNodeError.is(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(/^Flow "dup" has two nodes named "count-2": one given as \{ id: "count-2" \}, the other a call of task "count" without an \{ id \}/);
    expect(message).toContain('give the { id } another name, e.g. { id: "count-other" }');
    expect(message).not.toContain("count-2-2");
    expect(message).toMatch(/\(at test\/build-mistakes\.test\.ts:\d+:\d+\)$/);
  });

  it("a value that is not JSON data names no empty path; a param's does not suggest an artifact", async () => {
    const error = thrown(() => flow("nan").build(() => (echo({ value: NaN }), {})).graph());
    expect((error as Error).message).toMatch(/^Task "echo" input "value" at "\(the whole input\)" cannot be serialized: .*got NaN \(number\)/);
    // Where nothing names the value itself, no `at ""` is said.
    expect(new NotSerializableError('Map "m" item 0', "", "NaN (number)").message).toMatch(/^Map "m" item 0 cannot be serialized: expected JSON data/);
    const param = await flow("p").build(() => ({})).run({ ...off, params: { x: () => 1 } }).catch((e: unknown) => e);
    expect(NotSerializableError.is(param)).toBe(true);
    expect((param as Error).message).toBe(
      'Flow "p" params at "x" cannot be serialized: expected JSON data (string, finite number, boolean, null, plain object, array) or an Artifact, got a function. ' +
        "Give params as JSON data (strings, numbers, booleans, null, arrays, plain objects).",
    );
  });

  it("a params schema that makes a param something else than JSON data is named as the cause, not the value given", async () => {
    // `-p when=2024-01-01` was told "Give params as JSON data", though a string was given.
    const dated = flow("dated").params(z.object({ when: z.coerce.date() })).build(() => ({}));
    const error = await dated.run({ ...off, params: { when: "2024-01-01" } }).catch((e: unknown) => e);
    expect(NotSerializableError.is(error)).toBe(true);
    expect((error as Error).message).toBe(
      'Flow "dated" params schema\'s output at "when" cannot be serialized: expected JSON data (string, finite number, boolean, null, plain object, array) or an Artifact, got a Date instance. ' +
        "The params schema made it from the JSON data given: a run records the params and hashes them into cache keys as the schema returns them, " +
        "so the schema's output must be JSON data too. Keep the param JSON data in the schema (a date as a string: z.string(), not z.coerce.date()) " +
        "and convert it in the task that reads it (new Date(value)).",
    );
    // A value given that is not JSON data is still the value's to fix.
    const given = await flow("given").params(z.object({ when: z.date() })).build(() => ({})).run({ ...off, params: { when: new Date(0) } }).catch((e: unknown) => e);
    expect((given as Error).message).toMatch(/^Flow "given" params at "when" cannot be serialized: .*got a Date instance\. Give params as JSON data/);
  });
});

async function tmpRoot(): Promise<string> {
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  return mkdtemp(join(tmpdir(), "cairn-build-mistakes-"));
}
