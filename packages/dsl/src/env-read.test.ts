import { describe, expect, it } from "vitest";
import { envReadBy } from "./env-read.ts";

describe("envReadBy", () => {
  it("finds the variables a function reads from process.env by a literal name", () => {
    const fn = (n: number) => n * Number(process.env.SCALE ?? "1") + Number(process.env["OFFSET"]) + Number(process.env?.["SHIFT"]) + Number(process.env?.TILT);
    expect(envReadBy(fn.toString())).toEqual(["OFFSET", "SCALE", "SHIFT", "TILT"]);
  });

  it("does not follow a computed name, and finds nothing where none is read", () => {
    const name = "SCALE";
    expect(envReadBy(((n: number) => n * Number(process.env[name])).toString())).toEqual([]);
    expect(envReadBy(((n: number) => ({ env: n })).toString())).toEqual([]);
  });
});
