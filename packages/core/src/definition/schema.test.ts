import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { validateWithSchema } from "./schema.ts";

describe("validateWithSchema's wrongType", () => {
  it("tells a value of another type from one of the right type that fails a check, in zod and valibot", async () => {
    const zod = z.object({ run: z.string().regex(/^\d{8}$/), dates: z.array(z.string()) });
    const a = await validateWithSchema(zod, { run: "123", dates: "x" });
    expect(a.ok || Object.fromEntries(a.paths.map((p, i) => [p, a.wrongType[i]]))).toEqual({ run: false, dates: true });
    const val = v.object({ run: v.pipe(v.string(), v.regex(/^\d{8}$/)), dates: v.array(v.string()) });
    const b = await validateWithSchema(val, { run: "123", dates: "x" });
    expect(b.ok || Object.fromEntries(b.paths.map((p, i) => [p, b.wrongType[i]]))).toEqual({ run: false, dates: true });
  });
});
