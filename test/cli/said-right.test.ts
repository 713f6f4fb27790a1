/**
 * What a CLI review met: input a user gives by mistake (a typo, a flag that cannot apply, a
 * value copied from a .env file with its quotes) is met with words that name it and say how
 * to fix it, not with silence or with words meant for another case.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("refusals that name what the user gave, and the fix", () => {
  it.each([
    // Was "while it records to none (none)": neither the flag nor the fix was named.
    [["run", ok, "--queue", "redis://127.0.0.1:1", "--no-tracking"], {}, /records to no tracker \(`--no-tracking`, or `tracker: false`, records no runs\): .* Drop --no-tracking \(or `tracker: false`\), and set MLFLOW_TRACKING_URI=/],
  ] as Array<[string[], NodeJS.ProcessEnv, RegExp]>)("cairn %s", async (args, env, message) => {
    const r = await cairn(args, { env });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });
});

describe("a typo is met with the nearest name, wherever a name is checked against a list", () => {
  const fixtures = join(repo, "test/fixtures");
  it.each([
    [["explain", ok, "dubble"], /Expected `TASK \(cairn explain FILE TASK\)` to be a task name or node id of flow "ok" \(did you mean "double"\?\): double, double-2, got "dubble"\./],
    [["cache", "lss"], /Expected cairn cache ls, clear or prune, got "cairn cache lss" \(did you mean cairn cache ls\?\)\./],
    [["--verison"], /Unknown option '--verison' for cairn; did you mean --version\? cairn takes a command first \(init, .*\), or -h, --help, -v, --version\./],
    [["-V"], /Unknown option '-V' for cairn; did you mean -v\?/],
    [["help", "rn"], /Unknown command "rn"; did you mean run\?/],
    [["run", ok, "--failure-policy", "fail-fst"], /Expected --failure-policy to be fail-fast or continue, got "fail-fst" \(did you mean "fail-fast"\?\)\./],
    [["graph", ok, "-f", "mermiad"], /Expected --format mermaid, dot or json, got "mermiad" \(did you mean "mermaid"\?\)\./],
    [["init", "x", "--template", "pyhton", "--no-install"], /Expected --template to be one of ts, python, got "pyhton" \(did you mean "python"\?\)\./],
    [["run", ok, "-p", "rowz=1"], /Flow "ok" has no param "rowz" \(did you mean "rows"\?\)\. Its params are: rows, label\./],
    [["run", join(fixtures, "ok.flwo.ts")], new RegExp(`Flow file .*ok\\.flwo\\.ts does not exist .*Check the path: did you mean ${join(fixtures, "ok.flow.ts").replaceAll(".", "\\.")}\\?`)],
  ])("cairn %s", async (args, message) => {
    const r = await cairn(args);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });

  it("cairn runs --experiment with a typo of an experiment there is", async () => {
    const cwd = await tmp("cairn-cli-exp-");
    expect((await cairn(["run", ok, "--no-report"], { cwd })).code).toBe(0);
    const r = await cairn(["runs", "--experiment", "okk"], { cwd });
    expect(r.stderr).toMatch(/No experiment named "okk" in .* has runs to show: there is none by that name \(did you mean "ok"\?\)\./);
    expect(r.code).toBe(2);
  });
});

describe.runIf(process.platform === "linux")("cairn report --open on a machine without a desktop", () => {
  it("says the opener failed and where the report is, instead of nothing (exit 0: the report is written)", async () => {
    const cwd = await tmp("cairn-cli-open-");
    expect((await cairn(["run", ok, "--no-report"], { cwd })).code).toBe(0);
    // xdg-open's own exit when it finds no way to open a file: 3, "no method available".
    writeFileSync(join(cwd, "xdg-open"), "#!/bin/sh\necho 'xdg-open: no method available for opening' >&2\nexit 3\n");
    chmodSync(join(cwd, "xdg-open"), 0o755);
    const r = await cairn(["report", "latest", "--open", "-o", "r.html"], { cwd, env: { PATH: `${cwd}:${process.env.PATH}` } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`cairn: warning: could not open the report with xdg-open (it exited with code 3); it is written at ${join(cwd, "r.html")}: open that file in a browser yourself.\n`);
  });
});
