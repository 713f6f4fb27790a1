/**
 * `cli()` in an app (README, Embedding): it resolves to its exit code and leaves the process to
 * the app, with no signal handlers of its own and no `process.exit`, also when a run leaves
 * abandoned work running. The app is a real `node --import tsx` process.
 */
import { symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { LocalStore } from "@cairn/dsl";
import { cli } from "../../packages/cli/src/index.ts";
import { cairnBin, start, childEnv, repo, tmp } from "../cache/helpers.ts";

const app = join(repo, "test/cli/fixtures/embed/app-cli.ts");
const tsxLoader = pathToFileURL(join(repo, "node_modules/tsx/dist/loader.mjs")).href;

describe("cli() embedded in an app", () => {
  it("resolves after a run that left abandoned work running, and the app's process goes on to its own end", async () => {
    const root = await tmp("cairn-embed-cli-");
    const flowFile = join(repo, "test/reliability/fixtures/ignores-signal.flow.ts");
    const exit = await start(process.execPath, ["--import", "tsx", app, flowFile, root], { env: childEnv({ STRAY_MS: "4000" }) }).done;
    expect(exit.stdout, exit.stderr).toContain("[app] cli() resolved 1");
    expect(exit.stdout).not.toContain("Exiting without waiting for abandoned work");
    // Exited by itself once the stray work ended, with the app's code, not cairn's.
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });

  it("installs no signal handlers: a SIGTERM reaches only the app's own handler and does not cancel the run", async () => {
    const root = await tmp("cairn-embed-cli-");
    const release = join(root, "release");
    const flowFile = join(repo, "test/cli/fixtures/embed/waits-for-file.flow.ts");
    let signalled = false;
    let released = false;
    const exit = await start(process.execPath, ["--import", "tsx", app, flowFile, root], {
      env: childEnv({ RELEASE_FILE: release }),
      onStdout: (out, child) => {
        if (!signalled && out.includes("[waits] started")) {
          signalled = true;
          child.kill("SIGTERM");
        }
        if (!released && out.includes("[app] own SIGTERM handler ran")) {
          released = true;
          void writeFile(release, "");
        }
      },
    }).done;
    expect(exit.stdout, exit.stderr).toContain("[waits] started; SIGTERM listeners: 1");
    expect(exit.stdout).toContain("[app] own SIGTERM handler ran");
    expect(exit.stdout + exit.stderr).not.toContain("cancelling the run");
    expect(exit.stdout).toContain("[app] cli() resolved 0");
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });

  it("cancels a run when io.signal aborts, as Ctrl-C cancels `cairn run`: its runs closed KILLED with the reason, resolved to 130, no signal handler added", async () => {
    const root = await tmp("cairn-embed-cli-");
    const listeners = () => ({ SIGINT: process.listenerCount("SIGINT"), SIGTERM: process.listenerCount("SIGTERM"), SIGHUP: process.listenerCount("SIGHUP") });
    const before = listeners();
    const stop = new AbortController();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    let err = "";
    stdout.on("data", (d: Buffer) => (out += d));
    // With --json the task's log lines go to stderr.
    stderr.on("data", (d: Buffer) => {
      err += d;
      if (err.includes("[waits] started") && !stop.signal.aborted) {
        expect(listeners()).toEqual(before);
        stop.abort("the app is shutting down");
      }
    });
    const flowFile = join(repo, "test/cli/fixtures/embed/waits-for-file.flow.ts");
    // Its task waits for a file no one writes (RELEASE_FILE is not set in this process): before, the run went on until the test's timeout.
    const code = await Promise.race([
      cli(["run", flowFile, "--json", "--no-report", "--root", root], { stdout, stderr, env: childEnv(), signal: stop.signal }),
      sleep(30_000, "still running 30 s after it started", { ref: false }),
    ]);
    expect(code, err).toBe(130);
    expect(err).toContain("io.signal aborted: cancelling the run");
    const events = out.trim().split("\n").map((line) => JSON.parse(line) as { type: string; status?: string; runId?: string; task?: string });
    const flowEnd = events.filter((e) => e.type === "flow").at(-1)!;
    expect(flowEnd).toMatchObject({ status: "cancelled" });
    const store = new LocalStore({ root });
    const flowRun = await store.getRun(flowEnd.runId!);
    expect(flowRun).toMatchObject({ status: "KILLED", tags: { "cairn.cancel_reason": "the app is shutting down" } });
    const taskRuns = await store.searchRuns({ experimentIds: [flowRun!.experimentId], parentRunId: flowRun!.runId });
    expect(taskRuns.map((r) => [r.name, r.status])).toEqual([["waits", "KILLED"]]);
    expect(listeners()).toEqual(before);
  });

  it("cancels a run whose io.signal is aborted before it starts: said, resolved to 130, nothing recorded", async () => {
    const root = await tmp("cairn-embed-cli-");
    const stderr = new PassThrough();
    let err = "";
    stderr.on("data", (d: Buffer) => (err += d));
    const flowFile = join(repo, "test/cli/fixtures/embed/waits-for-file.flow.ts");
    const code = await cli(["run", flowFile, "--no-report", "--root", root], { stdout: new PassThrough(), stderr, env: childEnv(), signal: AbortSignal.abort("the app stopped first") });
    expect(code, err).toBe(130);
    expect(err).toContain("the app stopped first, while the run was starting, before its flow run was created; nothing was recorded");
    expect(await new LocalStore({ root }).searchRuns({ experimentIds: ["0"] })).toEqual([]);
  });
});

/**
 * `tsx flow.ts` runs the flow a file default-exports (README, Embedding); an app's entry module
 * that builds flows without default-exporting one is left alone, its own flags and exit code too.
 */
describe("cli() run twice in one app process, with an edit between", () => {
  /** A folder with the flow and the app (node_modules linked to the repo's, so `cairn-dag` resolves), run as one `node --import tsx` process. */
  async function runApp(edit: string, io = ""): Promise<{ stdout: string; stderr: string; code: number | null }> {
    const dir = await tmp("cairn-embed-edit-");
    await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
    await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
    await writeFile(join(dir, "lib.ts"), "export const w = 10;\n");
    const appText = `
      import { cli } from "cairn-dag";
      import { writeFileSync } from "node:fs";
      const flowText = (v) => \`import { flow, task } from "cairn-dag";\\nimport { w } from "./lib.ts";\\nconst t = task("t").run(async () => ({ v: \${v}, w }));\\nexport default flow("edit").build(() => ({ v: t({}).v, w: t({}).w }));\\n\`;
      writeFileSync("flow.ts", flowText(1));
      console.log("[app] first " + await cli(["run", "flow.ts", "--root", ".cairn", "--no-tracking"]${io}));
      ${edit}
      console.log("[app] second " + await cli(["run", "flow.ts", "--root", ".cairn", "--no-tracking"]${io}));
    `;
    await writeFile(join(dir, "app.ts"), appText);
    return start(process.execPath, ["--import", "tsx", "app.ts"], { cwd: dir }).done;
  }

  it("runs the edited flow file's code, not the code Node loaded first", async () => {
    const exit = await runApp(`writeFileSync("flow.ts", flowText(2));`);
    expect(exit.stdout, exit.stderr).toContain(`Outputs: {"v":1,"w":10}`);
    expect(exit.stdout).toContain(`Outputs: {"v":2,"w":10}`);
    expect(exit.stdout).toContain("[app] second 0");
  });

  it("runs the edited flow file's code also when the app's cli() takes the process's signals (handleSignals), as the cairn command does", async () => {
    // The command's own import records nothing; a second one in the process was then a plain import, which Node answered with the first.
    const exit = await runApp(`writeFileSync("flow.ts", flowText(2));`, ", { handleSignals: true }");
    expect(exit.stdout, exit.stderr).toContain(`Outputs: {"v":1,"w":10}`);
    expect(exit.stdout).toContain(`Outputs: {"v":2,"w":10}`);
    expect(exit.stdout).toContain("[app] second 0");
  });

  it("refuses a flow whose imported module was edited, which Node cannot load anew, naming it and saying to start a new process", async () => {
    const exit = await runApp(`writeFileSync("lib.ts", "export const w = 20;\\n");`);
    expect(exit.stdout, exit.stderr).toContain("[app] first 0");
    // Only the first run ran: the second was refused before any task, not run with the old lib.ts.
    expect(exit.stdout.split("Outputs:")).toHaveLength(2);
    expect(exit.stderr).toMatch(/FlowFileError: Expected the code this process loaded for flow\.ts to be as it is on disk, but lib\.ts changed since this process loaded it; .* Start a new process to run the edited code\./);
    expect(exit.stdout).toContain("[app] second 2");
  });
});

describe("cli() running two flow files in one app process, with an edit of a module both import between", () => {
  it("refuses the second flow, whose lib.ts the first one loaded before the edit, instead of running (and caching) the old lib.ts", async () => {
    // Only an entry imported before was checked: fb.flow.ts, new to the process, ran with the
    // lib.ts Node loaded for fa.flow.ts ("OLD") and stored that under the new lib.ts's cache key.
    const dir = await tmp("cairn-embed-two-flows-");
    await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
    await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
    await writeFile(join(dir, "lib.ts"), `export const v = () => "OLD";\n`);
    const flowText = (name: string) =>
      `import { flow, task } from "cairn-dag";\nimport { v } from "./lib.ts";\nconst t = task("t-${name}").run(async () => ({ v: v() }));\nexport default flow("${name}").build(() => ({ v: t({}).v }));\n`;
    await writeFile(join(dir, "fa.flow.ts"), flowText("fa"));
    await writeFile(join(dir, "fb.flow.ts"), flowText("fb"));
    const appText = `
      import { cli } from "cairn-dag";
      import { writeFileSync } from "node:fs";
      console.log("[app] first " + await cli(["run", "fa.flow.ts", "--root", ".cairn", "--no-tracking"]));
      writeFileSync("lib.ts", 'export const v = () => "NEW";\\n');
      console.log("[app] second " + await cli(["run", "fb.flow.ts", "--root", ".cairn", "--no-tracking"]));
    `;
    await writeFile(join(dir, "app.ts"), appText);
    const exit = await start(process.execPath, ["--import", "tsx", "app.ts"], { cwd: dir }).done;
    expect(exit.stdout, exit.stderr).toContain(`Outputs: {"v":"OLD"}`);
    expect(exit.stdout).toContain("[app] first 0");
    expect(exit.stdout.split("Outputs:")).toHaveLength(2);
    expect(exit.stderr).toMatch(/FlowFileError: Expected the code this process loaded for fb\.flow\.ts to be as it is on disk, but lib\.ts changed since this process loaded it; .* Start a new process to run the edited code\./);
    expect(exit.stdout).toContain("[app] second 2");
    // A new process runs the new code: nothing old was stored under its key.
    const fresh = await start(process.execPath, ["--import", "tsx", "-e", `const { cli } = await import("cairn-dag"); await cli(["run", "fb.flow.ts", "--root", ".cairn", "--no-tracking"]);`], { cwd: dir }).done;
    expect(fresh.stdout, fresh.stderr).toContain(`Outputs: {"v":"NEW"}`);
  });
});

describe("the cairn command, which imports its flow without recording its modules", () => {
  it("checks them when code it runs calls cli() on another flow: the one whose module changed is refused, the other runs", async () => {
    // The command's import parses no module graph (it imports once and ends); a later import records
    // what it loaded then, a file changed since that import counting as changed.
    const dir = await tmp("cairn-command-then-cli-");
    await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
    await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
    await writeFile(join(dir, "lib.ts"), `export const v = () => "OLD";\n`);
    await writeFile(join(dir, "other.ts"), `export const v = () => "SAME";\n`);
    const flowText = (name: string, module: string) =>
      `import { flow, task } from "cairn-dag";\nimport { v } from "./${module}";\nconst t = task("t-${name}").run(async () => ({ v: v() }));\nexport default flow("${name}").build(() => ({ v: t({}).v }));\n`;
    await writeFile(join(dir, "fb.flow.ts"), flowText("fb", "lib.ts"));
    await writeFile(join(dir, "fc.flow.ts"), flowText("fc", "other.ts"));
    await writeFile(
      join(dir, "fa.flow.ts"),
      `import { cli, flow, task } from "cairn-dag";\nimport { writeFileSync } from "node:fs";\nimport { v } from "./lib.ts";\nimport { v as o } from "./other.ts";\n` +
        `const t = task("t-fa").run(async () => {\n  writeFileSync("lib.ts", 'export const v = () => "NEW";\\n');\n` +
        `  const fb = await cli(["run", "fb.flow.ts", "--root", ".cairn", "--no-tracking"]);\n  const fc = await cli(["run", "fc.flow.ts", "--root", ".cairn", "--no-tracking"]);\n` +
        `  return { codes: \`\${v()} \${o()} fb=\${fb} fc=\${fc}\` };\n});\nexport default flow("fa").build(() => ({ codes: t({}).codes }));\n`,
    );
    // Older than the command's import, as files of a project are: not counted as changed for their age.
    // other.ts is left as just written (an editor's save, a code generator, then `cairn run`): what the
    // import read, no change (a 2 s slack counted it as edited, and fc was refused).
    const old = new Date(Date.now() - 3_600_000);
    for (const file of ["lib.ts", "fa.flow.ts", "fb.flow.ts", "fc.flow.ts"]) await utimes(join(dir, file), old, old);
    const exit = await start(process.execPath, [cairnBin, "run", "fa.flow.ts", "--root", ".cairn", "--no-tracking"], { cwd: dir, env: childEnv({ CAIRN_LOADER: "tsx" }) }).done;
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout).toContain(`Outputs: {"codes":"OLD SAME fb=2 fc=0"}`);
    expect(exit.stdout).toContain(`Outputs: {"v":"SAME"}`);
    expect(exit.stderr).toMatch(/FlowFileError: Expected the code this process loaded for fb\.flow\.ts to be as it is on disk, but lib\.ts changed since this process loaded it;/);
  });
});

describe("the autorun of an app's entry module", () => {
  /** `node --import tsx FILE ...args` with the autorun on (childEnv turns it off). */
  const entry = async (file: string, args: string[]) => {
    const root = await tmp("cairn-embed-autorun-");
    const env = childEnv({ APP_ROOT: root });
    delete env.CAIRN_NO_AUTORUN;
    // tsx named by its file: the working folder, where an unwanted run would write .cairn/, is outside the workspace.
    return start(process.execPath, ["--import", tsxLoader, join(repo, "test/cli/fixtures/embed", file), ...args], { cwd: root, env }).done;
  };

  it("leaves a server that builds a flow inline and runs it on request alone: no error, exit 0, its own flags", async () => {
    const exit = await entry("server-inline.ts", ["--port", "8080"]);
    expect(exit.stderr).toBe("");
    expect(exit.stdout).toContain('[app] served {"b":2}');
    // Evaluated once (the autorun's look at the module reads the loaded one), with the app's argv.
    expect(exit.stdout.match(/module evaluated/g)).toEqual(["module evaluated"]);
    expect(exit.stdout).toContain('[app] module evaluated with ["--port","8080"]');
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });

  it("leaves an entry module whose default export is not a flow alone", async () => {
    const exit = await entry("app-default-export.ts", ["--verbose"]);
    expect(exit.stderr).toBe("");
    expect(exit.stdout).not.toMatch(/flow served started|Unknown option/);
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });
});

describe("CAIRN_NO_AUTORUN is read as a switch", () => {
  /** `node --import tsx ok.flow.ts` with CAIRN_NO_AUTORUN set to `value`. */
  const autorun = async (value: string) => {
    const cwd = await tmp("cairn-no-autorun-");
    const env = childEnv({ CAIRN_NO_AUTORUN: value });
    return { cwd, exit: await start(process.execPath, ["--import", tsxLoader, join(repo, "test/fixtures/ok.flow.ts")], { cwd, env }).done };
  };

  // Only "1" stopped the run: the spellings a user most likely writes ran the flow, side effects and all.
  it.each(["true", "YES", " 1 ", "on"])("CAIRN_NO_AUTORUN=%j runs nothing", async (value) => {
    const { exit } = await autorun(value);
    expect(exit.stdout).not.toMatch(/started|succeeded/);
    expect(exit.stderr).toBe("");
    expect(exit.code).toBe(0);
  });

  it("a value that is no switch runs nothing and is refused naming the variable, exit 2", async () => {
    const { exit } = await autorun("maybe");
    expect(exit.stdout).not.toMatch(/started|succeeded/);
    expect(exit.stderr).toContain(
      'cairn: OptionError: Expected `CAIRN_NO_AUTORUN` to be 1, true, yes or on to turn it on; 0, false, no, off or empty (or unset) to turn it off; any case, got "maybe" (string). The flow was not run.',
    );
    expect(exit.code).toBe(2);
  });
});


describe("cli() called twice in one app process with CAIRN_QUEUE in its environment", () => {
  // The first call took the variable out of process.env (so that task processes do not inherit it):
  // the second found no queue, a `run` ran every task here without a word, `workers` was refused.
  it("the second call uses the same queue as the first", async () => {
    const dir = await tmp("cairn-embed-queue-");
    await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
    await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
    await writeFile(
      join(dir, "app.ts"),
      `
      import { cli } from "cairn-dag";
      console.log("[app] first " + await cli(["workers"]));
      console.log("[app] env " + (process.env.CAIRN_QUEUE === undefined ? "unset" : "set"));
      console.log("[app] second " + await cli(["workers"]));
    `,
    );
    // Nothing listens on port 9: each call is the queue's refusal (exit 3), not "no queue" (exit 2).
    const exit = await start(process.execPath, ["--import", "tsx", "app.ts"], { cwd: dir, env: childEnv({ CAIRN_QUEUE: "redis://127.0.0.1:9" }) }).done;
    expect(exit.stdout, exit.stderr).toContain("[app] first 3");
    expect(exit.stdout).toContain("[app] env unset");
    expect(exit.stdout).toContain("[app] second 3");
    expect(exit.stderr).not.toMatch(/UsageError/);
  });
});
