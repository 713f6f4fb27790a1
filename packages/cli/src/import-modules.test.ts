import { describe, expect, it } from "vitest";
import { takeImports } from "./import-modules.ts";

describe("takeImports", () => {
  it("takes --import FILE and --import=FILE out of a command's flags, and nothing after `--`, which ends the flags", () => {
    expect(takeImports(["--import", "a.ts", "--json", "--import=b.ts", "x"])).toEqual({ args: ["--json", "x"], files: ["a.ts", "b.ts"] });
    // Before: an `--import` after `--` was taken too, though `--` hands what follows to the command as given.
    expect(takeImports(["--import", "a.ts", "--", "--import", "c.ts"])).toEqual({ args: ["--", "--import", "c.ts"], files: ["a.ts"] });
  });
});
