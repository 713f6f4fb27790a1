/**
 * The command line as a user types it: Cairn's own message for an unknown flag, a flag without
 * its value or a switch given one (exit 2, never Node's parseArgs text), `cairn help COMMAND`,
 * and `cairn graph --json`.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("flags Cairn does not know, or that lack their value, exit 2 with Cairn's words", () => {
  it.each([
    [["run", ok, "--jsn"], /Unknown option '--jsn' for cairn run; did you mean --json\? cairn run takes: -p\/--param, --params-file, -c\/--concurrency, .*--json, --root, -h\/--help\. Run `cairn help run`/],
    [["run", ok, "--concurency", "2"], /Unknown option '--concurency' for cairn run; did you mean --concurrency\?/],
    [["graph", ok, "--fromat", "dot"], /Unknown option '--fromat' for cairn graph; did you mean --format\? cairn graph takes: -f\/--format, --json, -h\/--help\./],
    [["runs", "--limt", "3"], /Unknown option '--limt' for cairn runs; did you mean --limit\?/],
    [["show", "abcd", "--frobnicate"], /Unknown option '--frobnicate' for cairn show\. cairn show takes: /],
    [["cache", "ls", "--tsk", "a"], /Unknown option '--tsk' for cairn cache ls; did you mean --task\?.* Run `cairn help cache`/],
    [["run", ok, "--experiment"], /Expected a value after `--experiment` \(--experiment NAME\), got none\. Run `cairn help run`/],
    [["run", ok, "--root", "--json"], /Expected a value after `--root` \(--root DIR\), got none: the next argument, `--json`, is a flag\./],
    // A negative number is a value, refused with the range the flag takes: told to write --concurrency=-1, a user then got this refusal anyway.
    [["run", ok, "-c", "-1"], /Expected `--concurrency` to be an integer >= 1, got `-1`\. Give how many tasks run at once in digits \(-c 8\)/],
    [["runs", "-n", "-1"], /Expected `--limit` to be an integer >= 1, got `-1`\. Give how many runs to list in digits \(-n 50\), or leave it out for 20\./],
    [["runs", "prune", "--older-than", "-1d"], /Expected `--older-than` to be .*got `-1d`/],
    [["run", ok, "--pool", "gpu=2=3"], /Expected `--pool gpu` to be an integer >= 1, got `2=3`\. Give the pool's limit in digits \(--pool gpu=2\), or leave it out for 1\./],
    [["run", ok, "--pool", "=2"], /Expected --pool NAME=N, got "--pool =2"\./],
    [["run", ok, "--json=yes"], /Expected `--json` alone \(it is a switch and takes no value\), got `--json=yes`\./],
    // Dropped unread under --no-cache, a mistyped --rerun would pass unseen.
    [["run", ok, "--no-cache", "--rerun", "dubble"], /Expected either --no-cache or --rerun, got both: --no-cache neither looks up nor stores results, so --rerun would change nothing\. Drop --rerun to run every task without the cache, or --no-cache to use it\./],
    [["run", ok, "--refresh", "--no-cache", "--cache-strict"], /Expected either --no-cache or --refresh, --cache-strict, got both: .* so --refresh and --cache-strict would change nothing\./],
    // ioredis read `/abc` as `SELECT NaN`: an uncaught ReplyError and its stack, exit 1 ("unhealthy" for --healthcheck).
    [["run", ok, "--queue", "redis://127.0.0.1:1/abc"], /QueueUrlError: Expected the path of a redis URL to be a database number .*\(the queue URL\), got "redis:\/\/127\.0\.0\.1:1\/abc"/],
    [["worker", ok, "--queue", "redis://127.0.0.1:1/abc", "--healthcheck"], /QueueUrlError: Expected the path of a redis URL to be a database number/],
    [["worker", ok, "--queue", "redis://127.0.0.1:1/abc"], /QueueUrlError: Expected the path of a redis URL to be a database number/],
    [["workers", "--queue", "redis://127.0.0.1:1/abc"], /QueueUrlError: Expected the path of a redis URL to be a database number/],
    // Read as port 6379 by ioredis: another Redis, used without a word.
    [["workers", "--queue", "redis://127.0.0.1:notaport"], /QueueUrlError: Expected the port of a redis:\/\/ URL to be a number from 1 to 65535 \(the queue URL\), got "redis:\/\/127\.0\.0\.1:notaport" \(its port is "notaport"\)/],
    // `-p=n=5` was "-p =n=5", `-c=4` "got `=4`": a short flag takes its value after a space.
    [["run", ok, "-p=rows=5"], /Expected `-p NAME=VALUE` with its value after a space, got `-p=rows=5`: a short flag takes no `=`\. Write -p rows=5 or --param=rows=5\./],
    [["run", ok, "-c=4"], /Expected `-c N` with its value after a space, got `-c=4`: a short flag takes no `=`\. Write -c 4 or --concurrency=4\./],
    // Said what the flag is and its default.
    [["run", ok, "-c", "0"], /Expected `--concurrency` to be an integer >= 1, got `0`\. Give how many tasks run at once in digits \(-c 8\), or leave it out for the default: 4, or the CPU count if larger\./],
    [["runs", "-n", "x"], /Expected `--limit` to be an integer >= 1, got `x`\. Give how many runs to list in digits \(-n 50\), or leave it out for 20\./],
    // The engine's option name (`rerun`) was said, and no nearest task.
    [["run", ok, "--rerun", "doubel"], /UsageError: Expected `--rerun TASK` to be a task name or node id of flow "ok" \(did you mean "double"\?\): double, double-2, got "doubel"\.\n/],
    [["help", "frobnicate"], /Unknown command "frobnicate"\. Expected one of: init, run, graph, plan, explain, cache, runs, show, report, worker, workers\./],
  ])("cairn %s", async (args, message) => {
    const r = await cairn(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/ERR_PARSE_ARGS|TypeError/);
    expect(r.code).toBe(2);
  });
});

describe("cairn run --json=VALUE", () => {
  // A reader of the events saw an empty stdout: only `--json` itself was read as asking for them.
  it.each(["--json=yes", "--json=true"])("%s is refused, exit 2, with the one error event on stdout, as any bad flag under --json", async (flag) => {
    const r = await cairn(["run", ok, flag]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected `--json` alone \(it is a switch and takes no value\)/);
    const events = r.stdout.trim().split("\n").map((line) => JSON.parse(line) as unknown);
    expect(events).toEqual([{ type: "error", exitCode: 2, error: { name: "UsageError", message: expect.stringContaining(`got \`${flag}\``) }, time: expect.any(Number) }]);
  });
});

describe("cairn help COMMAND", () => {
  it("prints the command's help, as cairn COMMAND --help does", async () => {
    for (const command of ["run", "graph", "show", "cache"]) {
      const viaHelp = await cairn(["help", command]);
      const viaFlag = await cairn([command, "--help"]);
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^Usage: cairn ${command}`));
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
    }
  });
});

describe("cairn help runs", () => {
  it("gives --experiment as a filter, not as required: without it runs lists every experiment's runs, on a server too", async () => {
    const r = await cairn(["help", "runs"]);
    expect(r.stdout).toMatch(/--experiment NAME\s+Only this experiment's runs\. Default: every experiment's\n/);
    expect(r.stdout).not.toMatch(/required/);
  });
});

describe("cairn graph --json", () => {
  it("is --format json", async () => {
    const alias = await cairn(["graph", ok, "--json"]);
    const long = await cairn(["graph", ok, "--format", "json"]);
    expect(alias.code).toBe(0);
    expect(alias.stdout).toBe(long.stdout);
    expect(JSON.parse(alias.stdout).nodes.map((n: { id: string }) => n.id)).toEqual(["double", "double-2"]);
    expect((await cairn(["graph", ok, "--json", "--format", "json"])).stdout).toBe(long.stdout);
  });

  it("with another --format is refused", async () => {
    const r = await cairn(["graph", ok, "--json", "--format", "dot"]);
    expect(r.stderr).toMatch(/Expected one format, got --json and --format dot\. Pass one of them \(--json is --format json\)\./);
    expect(r.code).toBe(2);
  });
});

describe("cairn cache ls --task", () => {
  it("names the task when the cache holds none of its entries, instead of calling a full cache empty", async () => {
    const cwd = await tmp("cairn-cache-ls-");
    expect((await cairn(["run", ok, "--root", join(cwd, ".cairn")], { cwd })).code).toBe(0);
    const all = await cairn(["cache", "ls", "--root", join(cwd, ".cairn")], { cwd });
    expect(all.stdout).toMatch(/^task\s+key/);
    const none = await cairn(["cache", "ls", "--task", "nosuch", "--root", join(cwd, ".cairn")], { cwd });
    expect(none.code).toBe(0);
    expect(none.stdout).toBe(`No cache entries of task "nosuch" in the cache at ${join(cwd, ".cairn", "cache")}. --task takes a task name the cache holds: double.\n`);
  });
});

describe("each cairn cache subcommand takes its own flags only", () => {
  it("refuses another subcommand's flag and stray arguments, with the store untouched", async () => {
    const cwd = await tmp("cairn-cache-flags-");
    const root = join(cwd, ".cairn");
    expect((await cairn(["run", ok, "--root", root], { cwd })).code).toBe(0);
    const count = async () => (JSON.parse((await cairn(["cache", "ls", "--json", "--root", root], { cwd })).stdout) as unknown[]).length;
    const before = await count();
    expect(before).toBeGreaterThan(0);
    for (const [args, message] of [
      // Before, clear took --older-than and ignored it: every entry, however new, was removed.
      [["cache", "clear", "--older-than", "7d"], /Unknown option '--older-than' for cairn cache clear\. cairn cache clear takes: --task, --root, -h\/--help\./],
      // And prune took --task and ignored it: every task's entries were pruned.
      [["cache", "prune", "--task", "double", "--max-size", "1B"], /Unknown option '--task' for cairn cache prune\. cairn cache prune takes: --root, --older-than, --max-size/],
      [["cache", "ls", "--max-size", "1B"], /Unknown option '--max-size' for cairn cache ls\./],
      [["cache", "clear", "double"], /Expected no arguments after `cairn cache clear` but its flags, got "double"\. Run `cairn help cache`/],
    ] as const) {
      const r = await cairn([...args, "--root", root], { cwd });
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(2);
    }
    expect(await count()).toBe(before);
  });
});

describe("--no-tracking", () => {
  it("records no runs but uses the cache; a run that records replaces its entries, saying why, not that a run was lost", async () => {
    const cwd = await tmp("cairn-no-tracking-");
    const root = join(cwd, ".cairn");
    const untracked = await cairn(["run", ok, "--root", root, "--no-tracking", "--json"], { cwd });
    expect(untracked.code, untracked.stderr).toBe(0);
    expect((await cairn(["runs", "--root", root], { cwd })).stdout).toMatch(/^No flow runs yet/);
    const again = await cairn(["run", ok, "--root", root, "--no-tracking", "--json"], { cwd });
    expect(again.json.filter((e) => e.type === "task" && e.status === "cached").map((e) => e.task)).toEqual(["double", "double-2"]);
    const tracked = await cairn(["run", ok, "--root", root, "--json"], { cwd });
    expect(tracked.code, tracked.stderr).toBe(0);
    const said = tracked.stdout + tracked.stderr;
    // Before: "its source run ... no longer exists", as if the store had lost a run.
    expect(said).toMatch(/its source run [0-9a-f]{32} was never recorded \(a run with tracking off, --no-tracking, stored it\)/);
    expect(said).not.toMatch(/no longer exists/);
    // Sorted: a task's `succeeded` comes once its run is closed, so a chain's may end out of order.
    expect(tracked.json.filter((e) => e.type === "task" && e.status === "succeeded").map((e) => e.task).sort()).toEqual(["double", "double-2"]);
    const warm = await cairn(["run", ok, "--root", root, "--json"], { cwd });
    expect(warm.json.filter((e) => e.type === "task" && e.status === "cached").map((e) => e.task)).toEqual(["double", "double-2"]);
  });

  it("plan and explain leave its entries in the store, and with --no-tracking judge them as a --no-tracking run does", async () => {
    const cwd = await tmp("cairn-no-tracking-plan-");
    const root = join(cwd, ".cairn");
    expect((await cairn(["run", ok, "--root", root, "--no-tracking"], { cwd })).code).toBe(0);
    const entries = async () => (JSON.parse((await cairn(["cache", "ls", "--json", "--root", root], { cwd })).stdout) as unknown[]).length;
    expect(await entries()).toBe(2);
    // Judged for a run that records: the entries are not its to use, but they are not removed.
    const plan = await cairn(["plan", ok, "--root", root], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/double\s+runs\s+its entry was unusable: its source run [0-9a-f]{32} was never recorded/);
    expect(plan.stdout).toContain("0 of 2 tasks would come from the cache.");
    const explain = await cairn(["explain", ok, "double", "--root", root], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/double would run: its entry was unusable/);
    // Before, plan and explain deleted them, and the next --no-tracking run recomputed both.
    expect(await entries()).toBe(2);
    const planned = await cairn(["plan", ok, "--root", root, "--no-tracking"], { cwd });
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toContain("2 of 2 tasks would come from the cache.");
    const explained = await cairn(["explain", ok, "double-2", "--root", root, "--no-tracking"], { cwd });
    expect(explained.stdout).toMatch(/^double-2 would come from the cache: run [0-9a-f]{32}/);
    const again = await cairn(["run", ok, "--root", root, "--no-tracking", "--json"], { cwd });
    expect(again.json.filter((e) => e.type === "task" && e.status === "cached").map((e) => e.task)).toEqual(["double", "double-2"]);
  });
});

describe("NO_COLOR and FORCE_COLOR", () => {
  it("FORCE_COLOR=0 is off and an empty NO_COLOR is unset, in run and in the commands that print tables", async () => {
    const cwd = await tmp("cairn-colours-");
    const root = join(cwd, ".cairn");
    const ansi = /\u001b\[/;
    // childEnv sets NO_COLOR=1; each case says what it wants.
    const run = (env: NodeJS.ProcessEnv) => cairn(["run", ok, "--root", root], { cwd, env });
    expect((await run({ NO_COLOR: "", FORCE_COLOR: "1" })).stdout).toMatch(ansi);
    // Before, FORCE_COLOR=0 turned colours on in a pipe.
    expect((await run({ NO_COLOR: "", FORCE_COLOR: "0" })).stdout).not.toMatch(ansi);
    expect((await run({ NO_COLOR: "", FORCE_COLOR: "false" })).stdout).not.toMatch(ansi);
    expect((await run({ NO_COLOR: "1", FORCE_COLOR: "1" })).stdout).not.toMatch(ansi);
    // runs ignored FORCE_COLOR.
    expect((await cairn(["runs", "--root", root], { cwd, env: { NO_COLOR: "", FORCE_COLOR: "1" } })).stdout).toMatch(ansi);
    expect((await cairn(["runs", "--root", root], { cwd, env: { NO_COLOR: "", FORCE_COLOR: "0" } })).stdout).not.toMatch(ansi);
  });
});
