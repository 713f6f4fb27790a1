/**
 * What a CLI review met: input a user gives by mistake (a typo, a flag that cannot apply, a
 * value copied from a .env file with its quotes) is met with words that name it and say how
 * to fix it, not with silence or with words meant for another case.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

  // A flow of 200 tasks: every id was listed, a wall of text for one typo.
  it.each([
    ["run", "--rerun", "--rerun TASK"],
    ["plan", "--rerun", "--rerun TASK"],
    ["explain", undefined, "TASK \\(cairn explain FILE TASK\\)"],
  ])("cairn %s with a typo of one of 200 task names says the closest few and how to list them all", async (command, flag, shown) => {
    // The flow file as the user typed it (was the literal `FILE`).
    const many = "test/cli/fixtures/many-tasks.flow.ts";
    const r = await cairn([command, many, ...(flag ? [flag] : []), "stpe-12"], { cwd: repo });
    expect(r.stderr).toMatch(
      new RegExp(
        `Expected \`${shown}\` to be a task name or node id of flow "many-tasks", which has 200 nodes \\(did you mean "step-12", "step-2", "step-10", "step-11", "step-13"\\?\\), got "stpe-12"\\. Run \`cairn plan test/cli/fixtures/many-tasks\\.flow\\.ts\` to list the flow's tasks\\.\n`,
      ),
    );
    expect(r.stderr).not.toContain("step-200");
    expect(r.code).toBe(2);
  });

  // Every id, or the map's every item, is in the refusal: "Run `cairn plan FILE`" sent the user to a list they had just read.
  it.each([
    [["explain", ok, "dubble"], /to be a task name or node id of flow "ok" \(did you mean "double"\?\): double, double-2, got "dubble"\.\n$/],
    [["plan", join(repo, "test/cli/fixtures/sweep.flow.ts"), "--rerun", "fit[9]"], /to be an item of "fit", which has 6 \(fit\[0\] to fit\[5\]\), got "fit\[9\]"\.\n$/],
  ])("cairn %s, whose refusal lists every name, says no more where to list them", async (args, message) => {
    const r = await cairn(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain("cairn plan");
    expect(r.code).toBe(2);
  });

  // Compared whole, the item's index counted as three typos: `meausre[1]` met no "did you mean".
  it.each([
    [["plan", "--rerun", "meausre[1]"], /Expected `--rerun TASK` to be a task name or node id of flow "sweep-cli" \(did you mean "measure\[1\]"\?\): /],
    [["explain", "fti[2]"], /Expected `TASK \(cairn explain FILE TASK\)` to be a task name or node id of flow "sweep-cli" \(did you mean "fit\[2\]"\?\): /],
  ])("cairn %s, a typo in a map's name, is met with the item of the map meant", async (args, message) => {
    const [command, ...rest] = args;
    const r = await cairn([command!, join(repo, "test/cli/fixtures/sweep.flow.ts"), ...rest]);
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

describe("words that fit the case the user is in", () => {
  const fixture = (name: string) => join(repo, "test/cli/fixtures", name);
  it.each([
    // Every empty flag was said to mean "(for `cache clear --task`: every task)".
    [["run", ok, "--failure-policy="], {}, 2, /got an empty one \(`--failure-policy=""`\), often a shell variable that is not set\. Give a value; leaving --failure-policy out means its default\. Run/],
    [["cache", "clear", "--task", ""], {}, 2, /leaving --task out means every task\./],
    // Cairn's own repository script was named to a user's project.
    [["plan", ok], { CAIRN_CACHE_URL: "redis://127.0.0.1:1" }, undefined, /Check that redis is running there and this machine reaches it \(`redis-cli -u redis:\/\/127\.0\.0\.1:1 ping` answers PONG\); to run one on this machine, start `redis-server`/],
    // A listing has no tasks, finished or not.
    [["workers", "--queue", "redis://127.0.0.1:1"], {}, undefined, /while trying to list its workers \(.*\)\. Check that redis-server runs there and this machine reaches it \(redis-cli -u redis:\/\/127\.0\.0\.1:1 ping\)\.\n$/],
    [["plan"], {}, 2, /Expected a flow file, e\.g\. `cairn plan flow\.ts`; got none\./],
    [["show", "abcd", "--experiment", "nosuch"], {}, 2, /there is none by that name\. Without --experiment, cairn show looks for the run in every experiment\./],
    // A .env file's quotes, kept by docker --env-file and `export $(cat .env)`.
    [["runs"], { MLFLOW_TRACKING_URI: '"http://127.0.0.1:1"' }, 2, /MLFLOW_TRACKING_URI is ""http:\/\/127\.0\.0\.1:1"", but .* Its value is in quotes, which are part of it: .* Set MLFLOW_TRACKING_URI without them\./],
    [["plan", ok], { CAIRN_CACHE_URL: "'redis://127.0.0.1:1'" }, 2, /from CAIRN_CACHE_URL \(not a URL\)\. Its value is in quotes, .* Set CAIRN_CACHE_URL without them\./],
    [["plan", ok], { CAIRN_LEASE_TTL_MS: '"5000"' }, 2, /got "\\"5000\\""\. Its value is in quotes, .* Set CAIRN_LEASE_TTL_MS without them\./],
    [["plan", ok], { CAIRN_LEASE_TTL_MS: "5s" }, 2, /got "5s"\. Write the milliseconds in digits \(CAIRN_LEASE_TTL_MS=30000\), or unset it for 10000\./],
    // Told to start a server, where `http://` was missing.
    [["runs"], { MLFLOW_TRACKING_URI: "127.0.0.1:5710" }, 2, /It reads as a host and port without a scheme: write MLFLOW_TRACKING_URI=http:\/\/127\.0\.0\.1:5710 \(or https:\/\/\)\./],
    [["runs"], { MLFLOW_TRACKING_URI: "http://127.0.0.1:1", MLFLOW_HTTP_REQUEST_TIMEOUT: "10s" }, 2, /got "10s"\. Write the number alone, without a unit: MLFLOW_HTTP_REQUEST_TIMEOUT=10 \(seconds\)\./],
    [["run", fixture("named-flows.flow.ts")], {}, 2, /has no default export\. It exports the flows evaluate, train by name, but the CLI runs the default export: pick the one to run with `export default evaluate;` at its end/],
  ] as Array<[string[], NodeJS.ProcessEnv, number | undefined, RegExp]>)("cairn %s %o", async (args, env, code, message) => {
    const r = await cairn(args, { env });
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/start-redis\.sh|kept in the cache|cache clear --task`: every task/);
    if (code !== undefined) expect(r.code).toBe(code);
  });

  it("a number with blanks around it is read, as a switch is: CAIRN_LEASE_TTL_MS=' 5000 '", async () => {
    const r = await cairn(["plan", ok], { env: { CAIRN_LEASE_TTL_MS: " 5000 " } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("cairn plan's count agrees with its table: a map's own row, and items not known yet, are said not counted", async () => {
    const cwd = await tmp("cairn-cli-plan-count-");
    const before = await cairn(["plan", fixture("upstream-map.flow.ts")], { cwd });
    expect(before.stdout).toContain("\n0 of 1 tasks would come from the cache; not counted: sq, whose items are known only once the run makes its list.\n");
    expect((await cairn(["run", fixture("upstream-map.flow.ts"), "--no-report"], { cwd })).code).toBe(0);
    const after = await cairn(["plan", fixture("upstream-map.flow.ts")], { cwd });
    expect(after.stdout).toContain("\n4 of 4 tasks would come from the cache; not counted: the row of sq (a map's items are counted, each on its own row).\n");
  });

  it("cache clear whose index cleanup fails says which entries, once", async () => {
    const cwd = await tmp("cairn-cli-clear-index-");
    expect((await cairn(["run", ok, "--no-report"], { cwd })).code).toBe(0);
    // A fault a real server cannot be made to show on cue: it answers the probe clear makes before
    // it removes anything (a server down then is refused with nothing removed), then fails the rest.
    const server = createServer((req, res) => {
      const probe = req.url?.startsWith("/api/2.0/mlflow/experiments/get-by-name");
      res.writeHead(probe ? 404 : 500, { "content-type": "application/json" });
      res.end(JSON.stringify(probe ? { error_code: "RESOURCE_DOES_NOT_EXIST", message: "no such experiment" } : { error_code: "INTERNAL_ERROR", message: "disk full" }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const r = await cairn(["cache", "clear"], { cwd, env: { MLFLOW_TRACKING_URI: uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" } });
      expect(r.stderr).toMatch(new RegExp(`^cairn: could not update the experiments' indexes on the MLflow server at ${uri.replace(/[.:/]/g, "\\$&")} for the 2 entries just removed from the store: `));
      expect(r.stderr.match(/could not update/g)).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});

describe("input that was accepted without a word is refused (exit 2), naming it", () => {
  it.each([
    [["runs"], { CAIRN_LOADER: "tsc" }, /Expected CAIRN_LOADER to be tsx \(run cairn from its TypeScript sources through tsx\) or unset \(its bundle\), got "tsc"\. Set CAIRN_LOADER=tsx, or unset it\./],
    [["--version", "extra"], {}, /Expected nothing after `cairn --version`, got "extra"\. Run `cairn --version` alone\./],
    [["help", "run", "extra"], {}, /Expected nothing after `cairn help run`, got "extra"\. Run `cairn help run`\./],
    // Without MLFLOW_TRACKING_URI these passed, and failed every command once a server was set.
    [["runs"], { CAIRN_MLFLOW_RECORDS_IN_FLIGHT: "0" }, /TrackingConfigError: Expected CAIRN_MLFLOW_RECORDS_IN_FLIGHT to be an integer from 1 to 64, got `0`\./],
    [["runs"], { CAIRN_MLFLOW_CONNECTION_REQUESTS: "-1" }, /TrackingConfigError: Expected CAIRN_MLFLOW_CONNECTION_REQUESTS to be an integer from 0 to 10,000, got `-1`\./],
    [["plan", ok], { MLFLOW_HTTP_REQUEST_TIMEOUT: "10s" }, /TrackingConfigError: Expected MLFLOW_HTTP_REQUEST_TIMEOUT to be a number, in decimal, got "10s"\. Write the number alone/],
  ] as Array<[string[], NodeJS.ProcessEnv, RegExp]>)("cairn %s %o", async (args, env, message) => {
    const r = await cairn(args, { env });
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(2);
  });
});

describe("cairn help agrees with README", () => {
  it("help runs gives the usage README gives: -n N, and --root DIR", async () => {
    const usage = (await cairn(["help", "runs"])).stdout.split("\n")[0];
    expect(usage).toBe("Usage: cairn runs [--experiment NAME] [-n N] [--json] [--root DIR]");
    expect(readFileSync(join(repo, "README.md"), "utf8")).toContain(`| \`${usage!.slice("Usage: ".length)}\` |`);
  });

  it("help plan lists each of plan's flags on a line of its own, as help run does", async () => {
    const help = (await cairn(["help", "plan"])).stdout;
    for (const flag of ["-p, --param NAME=VALUE", "--rerun TASK", "--refresh", "--json", "--root DIR", "--experiment NAME", "--secrets FILE", "--no-tracking", "-h, --help"]) {
      expect(help).toMatch(new RegExp(`^ +${flag.replace(/[-.]/g, "\\$&")} {2,}\\S`, "m"));
    }
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
