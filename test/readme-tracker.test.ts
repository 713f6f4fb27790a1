/**
 * The README's list of the Tracker interface's optional methods (README, "Optional methods
 * declare themselves by being there"): each optional method of `Tracker`
 * (packages/core/src/tracking/tracker.ts) has its line saying what Cairn does without it, and
 * the list names no method the interface does not have, so that a new one cannot land unlisted.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repo } from "./cli/helpers.ts";

/** The names of the optional methods of `export interface Tracker`, in its order. */
function optionalMethods(): string[] {
  const source = readFileSync(join(repo, "packages/core/src/tracking/tracker.ts"), "utf8");
  const body = /^export interface Tracker \{\n([\s\S]*?)^\}/m.exec(source)?.[1];
  expect(body, "export interface Tracker in tracker.ts").toBeDefined();
  return [...body!.matchAll(/^ {2}(\w+)\?\(/gm)].map((m) => m[1]!);
}

/** The README's list: the items that follow the sentence that opens it. */
function listedMethods(): string[] {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const start = readme.indexOf("Optional methods declare themselves by being there");
  expect(start, "the README's sentence that opens the list").toBeGreaterThan(-1);
  const lines = readme.slice(start).split("\n");
  const first = lines.findIndex((line) => line.startsWith("- "));
  const items = lines.slice(first, lines.findIndex((line, i) => i > first && !line.startsWith("- ")));
  // What an item names before its colon: `name(args)`, or `a` and `b`.
  return items.flatMap((line) => [...line.slice(0, line.indexOf(":")).matchAll(/`(\w+)[(`]/g)].map((m) => m[1]!));
}

describe("README's list of the Tracker's optional methods", () => {
  it("names each optional method of the interface once, and no other", () => {
    const optional = optionalMethods();
    expect(optional.length).toBeGreaterThan(10);
    expect(listedMethods().sort()).toEqual(optional.sort());
  });
});
