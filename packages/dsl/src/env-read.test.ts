import { describe, expect, it } from "vitest";
import { envReadBy } from "./env-read.ts";

describe("envReadBy", () => {
  it("finds the variables a function reads from process.env by a literal name", () => {
    const fn = (n: number) => n * Number(process.env.SCALE ?? "1") + Number(process.env["OFFSET"]) + Number(process.env?.["SHIFT"]) + Number(process.env?.TILT);
    expect(envReadBy(fn.toString())).toEqual({ names: ["OFFSET", "SCALE", "SHIFT", "TILT"], unnamed: false });
  });

  it("does not follow a computed name or a destructuring, but says the function reads by a name its text does not show", () => {
    const name = "SCALE";
    expect(envReadBy(((n: number) => n * Number(process.env[name])).toString())).toEqual({ names: [], unnamed: true });
    expect(envReadBy((() => ({ ...process.env })).toString())).toEqual({ names: [], unnamed: true });
    expect(
      envReadBy(
        ((n: number) => {
          const { SCALE } = process.env;
          return n * Number(SCALE) + Number(process.env.OFFSET);
        }).toString(),
      ),
    ).toEqual({ names: ["OFFSET"], unnamed: true });
  });

  it("finds nothing where none is read", () => {
    expect(envReadBy(((n: number) => ({ env: n })).toString())).toEqual({ names: [], unnamed: false });
    expect(envReadBy(((n: number) => ({ environment: n, at: process.cwd() })).toString())).toEqual({ names: [], unnamed: false });
  });
});
