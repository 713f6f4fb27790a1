import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cairnBuild } from "./cairn-build.ts";

describe("cairnBuild", () => {
  it("from the workspace's sources is the package version and 'workspace': no pack stamped a commit there", () => {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(cairnBuild({})).toEqual({ version, commit: "workspace", id: `${version}+workspace` });
  });

  it("CAIRN_TEST_BUILD stands in for the commit (a test's worker of another build)", () => {
    expect(cairnBuild({ CAIRN_TEST_BUILD: "0000000" }).id).toMatch(/^\d+\.\d+\.\d+\+0000000$/);
  });
});
