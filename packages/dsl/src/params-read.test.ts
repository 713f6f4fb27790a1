/* eslint-disable @typescript-eslint/no-explicit-any */
import { describe, expect, it } from "vitest";
import { paramsReadBy } from "./params-read.ts";

const helper = (x: unknown) => x;
const read = (fn: ((...args: any[]) => unknown) | string) => paramsReadBy(typeof fn === "string" ? fn : fn.toString());

describe("which params a function task reads", () => {
  it("names the params read through the context, however it is taken apart", async () => {
    expect(await read((i: any, ctx: any) => i.x + ctx.params.n)).toEqual(["n"]);
    expect(await read((i: any, c: any) => c.params["a"] + c.logger)).toEqual(["a"]);
    expect(await read((i: any, { params }: any) => params.lr + params.depth)).toEqual(["depth", "lr"]);
    expect(await read((i: any, { params: { lr, depth: d } }: any) => lr + d)).toEqual(["depth", "lr"]);
    expect(await read((i: any, ctx: any) => { const { n, m } = ctx.params; return n + m; })).toEqual(["m", "n"]);
    expect(await read((i: any, ctx: any) => { const { params } = ctx; return params.k; })).toEqual(["k"]);
    expect(await read("run(i, ctx) { return ctx.params.z }")).toEqual(["z"]); // a method
    expect(await read((i: any, { params, ...rest }: any) => [params.a, rest])).toEqual(["a"]); // the rest holds no params
    expect(await read((i: any, ctx: any) => ({ params: 1, v: ctx.params.q }))).toEqual(["q"]); // a key named params is not a read
  });

  it("reads none when the context is not asked for its params", async () => {
    expect(await read(({ x }: any) => x)).toEqual([]);
    expect(await read(({ params }: any) => params.lr)).toEqual([]); // an input named params
    expect(await read(async (i: any, ctx: any) => (ctx.logger.info("params"), { a: ctx.signal }))).toEqual([]);
  });

  it("says all when which cannot be told", async () => {
    expect(await read((i: any, ctx: any) => JSON.stringify(ctx.params))).toBe("all");
    expect(await read((i: any, ctx: any) => [ctx.params, helper(ctx)])).toBe("all");
    expect(await read((i: any, ctx: any) => ctx.params[i.name])).toBe("all");
    expect(await read((i: any, { logger, ...rest }: any) => [logger, rest.params.a])).toBe("all");
    expect(await read(function (this: unknown) {
      // eslint-disable-next-line prefer-rest-params
      return arguments[1].params;
    })).toBe("all");
    expect(await read("(i, ctx) => ctx.params.n +")).toBe("all"); // does not parse
  });

  it("says all when the context reaches a helper or a wrapper, whose reads are not looked into", async () => {
    const train = (i: any, ctx: any) => i.x * ctx.params.lr;
    expect(await read((i: any, ctx: any) => helper(ctx))).toBe("all"); // the text never says params
    expect(await read((i: any, c: any) => train(i, c))).toBe("all");
    expect(await read((...args: [any, any]) => train(...args))).toBe("all");
    expect(await read((i: any, ...more: [any]) => train(i, ...more))).toBe("all");
    expect(await read((...[i, c]: [any, any]) => train(i, c))).toBe("all");
    // What `.run(timed(train))` hands the engine: the wrapper's own function.
    const timed = <A extends unknown[], R>(f: (...args: A) => R) => (...args: A): R => f(...args);
    expect(await read(timed(train))).toBe("all");
    // A bound function's text is `[native code]`.
    expect(await read(train.bind(null))).toBe("all");
    expect(await read(function (this: unknown, i: any, ctx: any) {
      // eslint-disable-next-line prefer-rest-params
      return [ctx.logger, helper(arguments)];
    })).toBe("all");
  });

  it("reads none when a rest or a context is there but never reaches a helper", async () => {
    expect(await read((i: any, ...unused: any[]) => i.x)).toEqual([]);
    expect(await read((i: any, ctx: any) => [i.x, ctx.logger, ctx.signal])).toEqual([]);
    expect(await read((i: any, ctx: any) => helper(i) ?? ctx.params.lr)).toEqual(["lr"]);
  });
});
