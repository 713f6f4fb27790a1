/**
 * The options Node takes export conditions from, read as Node reads them (code-deps.test.ts
 * checks the conditions against the files a real Node loads).
 */
import { describe, expect, it } from "vitest";
import { conditionOptions } from "./export-conditions.ts";

describe("conditionOptions", () => {
  it("takes --conditions=NAME, --conditions NAME and -C NAME from NODE_OPTIONS and the command line, NODE_OPTIONS first, each once", () => {
    expect(conditionOptions(["--conditions=development", "--conditions", "source", "-C", "edge", "--import", "tsx"], "-C development --conditions=worker")).toEqual({
      user: ["development", "worker", "source", "edge"],
      addons: true,
    });
    expect(conditionOptions([], undefined)).toEqual({ user: [], addons: true });
  });

  it("splits NODE_OPTIONS as Node does: double quotes keep a value with spaces, a backslash inside them keeps the next character", () => {
    expect(conditionOptions([], `--no-warnings  -C "my condition" --conditions="a\\"b"`).user).toEqual(["my condition", 'a"b']);
  });

  it("node-addons matches unless --no-addons is the last of --addons and --no-addons", () => {
    expect(conditionOptions(["--no-addons"], undefined).addons).toBe(false);
    expect(conditionOptions(["--addons"], "--no-addons").addons).toBe(true);
    expect(conditionOptions(["--no-addons"], "--addons").addons).toBe(false);
  });
});
