import { flow, task } from "@cairn/dsl";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseParams } from "./parse-params.ts";
import { UsageError } from "./usage-error.ts";

const withParams = (schema: z.ZodType) => flow("f").params(schema as never).build(() => ({})).definition;
const typedOnly = flow("f")
  .params<{ version: string; id: string; lr: number; rows: number }>()
  .build(({ params }) => ({ version: params.version, id: params.id, lr: params.lr, rows: params.rows })).definition;

describe("parseParams keeps a value's text where JSON would change it", () => {
  it("a string param gets the text as typed: `1.10` stays 1.10, a 20-digit id keeps its digits", async () => {
    const schema = z.object({ version: z.coerce.string(), id: z.union([z.string(), z.number()]) });
    expect(await parseParams(withParams(schema), ["version=1.10", "id=12345678901234567890"])).toEqual({ version: "1.10", id: "12345678901234567890" });
    expect(await parseParams(withParams(schema), ["version=1e3", "id=-0"])).toEqual({ version: "1e3", id: "-0" });
  });

  it("a number param still takes such a text as its number, and an exact one as before", async () => {
    const schema = z.object({ lr: z.number(), rows: z.number().int(), tags: z.array(z.string()).default([]) });
    expect(await parseParams(withParams(schema), ["lr=0.10", "rows=1e3"])).toEqual({ lr: 0.1, rows: 1000 }); // the run adds the default
    expect(await parseParams(withParams(schema), ["lr=0.5", "rows=12", 'tags=["a"]'])).toEqual({ lr: 0.5, rows: 12, tags: ["a"] });
  });

  it("a union of number and string keeps an exact number a number", async () => {
    const schema = z.object({ id: z.union([z.string(), z.number()]) });
    expect(await parseParams(withParams(schema), ["id=42"])).toEqual({ id: 42 });
  });

  it("a value rejected every way is reported about its number reading", async () => {
    const schema = z.object({ rows: z.number().int() });
    await expect(parseParams(withParams(schema), ["rows=1.50"])).rejects.toThrow(/rows: Invalid input: expected int, received number.*\(got -p rows=1\.50\)/s);
  });

  it("without a schema, numbers stay numbers unless reading them loses an integer's digits", async () => {
    expect(await parseParams(typedOnly, ["lr=0.10", "rows=5", "version=1.10", "id=12345678901234567890"])).toEqual({
      lr: 0.1,
      rows: 5,
      version: 1.1,
      id: "12345678901234567890",
    });
  });
});

describe("parseParams hands the run the values as read", () => {
  it("so a schema's transform runs once, in the run: `-p seconds=2` is 2000 ms, not 2000000; a type-changing transform works", async () => {
    const echo = task("echo")
      .input<{ ms: number; name: string; tags: string[] }>()
      .run((inputs) => inputs);
    const f = flow("twice")
      .params(
        z.object({
          seconds: z.number().default(5).transform((s) => s * 1000),
          name: z.string().default("run").transform((s) => `${s}-v2`),
          tags: z.string().default("a,b").transform((s) => s.split(",")),
        }),
      )
      .build(({ params }) => ({ out: echo({ ms: params.seconds, name: params.name, tags: params.tags }) }));
    const outputs = async (pairs: string[]) => (await f.run({ tracker: false, cache: false, params: await parseParams(f.definition, pairs) })).outputs();
    expect(await outputs(["seconds=2", "name=x", "tags=c,d"])).toEqual({ out: { ms: 2000, name: "x-v2", tags: ["c", "d"] } });
    expect(await outputs([])).toEqual({ out: { ms: 5000, name: "run-v2", tags: ["a", "b"] } });
  });
});

describe("parseParams refuses `__proto__` as a param name", () => {
  it("with a UsageError that says why, instead of dropping it", async () => {
    const schema = z.object({ n: z.number().default(1) }).passthrough();
    let thrown: unknown;
    try {
      await parseParams(withParams(schema), ["__proto__=1"]);
    } catch (error) {
      thrown = error;
    }
    expect(UsageError.is(thrown)).toBe(true);
    expect((thrown as Error).message).toBe(
      'Expected -p name=value with a param name, got "-p __proto__=1": `__proto__` cannot be a param\'s name (it is JavaScript\'s name for an object\'s prototype). Rename the param.',
    );
  });

  it("a param named like an Object method is an ordinary param", async () => {
    const schema = z.object({ constructor: z.string(), toString: z.string() });
    expect(await parseParams(withParams(schema), ["constructor=a", "toString=b"])).toEqual({ constructor: "a", toString: "b" });
  });
});
