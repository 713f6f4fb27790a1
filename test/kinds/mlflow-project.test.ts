/**
 * mlflowProject(): MLproject parameters checked before anything starts, the entry point
 * run directly (no tracking) or by `mlflow run` inside the task's run (a real MLflow
 * server), and the project's code fingerprint.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explainTask, openFlowCache, planFlow } from "@cairn/core";
import { flow, LocalStore, task } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { mlflowProject } from "../../packages/mlflow/src/project/mlflow-project.ts";
import { folderDigest, loadMlproject, MlflowProjectError, MlflowProjectParameterError, PROJECT_FILES_RECORDED, projectFingerprint, runsTypeScript, unusedEnvironmentWarning } from "../../packages/mlflow/src/project/run-project.ts";
import { CommandTemplateError } from "../../packages/process/src/spawn/index.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";

const PROJECT = fixture("mlproject");

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

describe("mlflowProject(): parameters are checked before anything starts", () => {
  it("a missing required parameter fails the build, naming project, entry point and parameter, listing the valid ones", async () => {
    const root = await tempRoot();
    const marker = join(root, "touched");
    const touch = mlflowProject("touch", { uri: PROJECT, entryPoint: "touch" });
    const error = errorOf(() => flow("missing").build(() => ({ out: touch({ marker }).$out })));
    expect(error).toBeInstanceOf(MlflowProjectParameterError);
    expect(error.message).toContain(`MLflow project "fixture-project"`);
    expect(error.message).toContain(`entry point "touch"`);
    expect(error.message).toContain(`the required parameter "count" (int) has no value and no default`);
    expect(error.message).toContain("Parameters of \"touch\": marker (string, required), count (int, required).");
    expect((error as MlflowProjectParameterError).problem).toBe("missing");
    expect(existsSync(marker)).toBe(false);
  });

  it("an unknown parameter and a literal of the wrong type fail the build", () => {
    const main = mlflowProject("main", { uri: PROJECT });
    const unknown = errorOf(() => flow("unknown").build(() => ({ out: main({ alpha: 1, epoch: 2 }).$out })));
    expect(unknown.message).toContain(`got the input "epoch", which is not a parameter of this entry point (did you mean "epochs"?)`);
    expect(unknown.message).toContain(`alpha (float, required), epochs (int, default 3), label (string, default "plain"), data (path, default "data.txt")`);
    const wrong = errorOf(() => flow("wrong").build(() => ({ out: main({ alpha: "fast" }).$out })));
    expect(wrong.message).toContain(`parameter "alpha" must be a float (a finite number), got "fast" (string).`);
    const int = errorOf(() => flow("int").build(() => ({ out: main({ alpha: 1, epochs: 2.5 }).$out })));
    expect(int.message).toContain(`parameter "epochs" must be an int (a whole number), got \`2.5\` (number).`);
  });

  it("an unknown entry point lists the valid ones", () => {
    const error = errorOf(() => mlflowProject("x", { uri: PROJECT, entryPoint: "mian" }));
    expect(error).toBeInstanceOf(MlflowProjectError);
    expect(error.message).toContain(`there is no entry point "mian" (did you mean "main"?). Entry points: "main", "log", "touch".`);
  });

  it("a parameter in a here-document's body is refused when the task is declared, before `bash -c` could run it", async () => {
    const dir = join(await tempRoot(), "heredoc-project");
    await mkdir(dir);
    const command = 'python - <<EOF\nprint("msg is", {msg})\nEOF\n';
    await writeFile(join(dir, "MLproject"), `name: heredoc\nentry_points:\n  main:\n    parameters: {msg: string}\n    command: ${JSON.stringify(command)}\n`);
    const error = errorOf(() => mlflowProject("h", { uri: dir }));
    expect(error).toBeInstanceOf(CommandTemplateError);
    expect(error.message).toContain("the placeholder {msg} is in the body of the here-document <<EOF (line 2)");
  });

  it("a value that arrives from upstream with the wrong type fails the task before the command starts", async () => {
    const root = await tempRoot();
    const marker = join(root, "touched");
    const upstream = task("upstream").run(() => ({ count: "many" }));
    const touch = mlflowProject("touch", { uri: PROJECT, entryPoint: "touch" });
    const f = flow("late").build(() => {
      const u = upstream();
      return { out: touch({ marker, count: u.count }).$out };
    });
    const result = await (await f.run(await runOptions({ cache: false }))).wait();
    expect(result.status).toBe("failed");
    expect(result.tasks.touch!.error?.name).toBe("MlflowProjectParameterError");
    expect(result.tasks.touch!.error?.message).toContain(`parameter "count" must be an int (a whole number), got "many" (string).`);
    expect(result.tasks.touch!.attempts).toBe(1);
    expect(existsSync(marker)).toBe(false);
  });
});

describe("an MLproject parameter's default is given as `mlflow run` gives it", () => {
  /** Defaults that YAML 1.2 and MLflow (PyYAML, YAML 1.1, Python's str()) read differently, and some they read alike. */
  const mlproject = (command: string) =>
    [
      "name: defaults",
      "entry_points:",
      "  main:",
      "    parameters:",
      "      a: {type: float, default: 1.0}",
      "      b: {type: string, default: 1e3}",
      "      c: {type: int, default: 0x10}",
      "      d: {type: string, default: true}",
      '      e: {type: string, default: "1.0"}',
      "      f: {type: float, default: 0.5}",
      "      g: {type: int, default: 3}",
      "      h: {type: string, default: plain}",
      '      i: {type: string, default: "a b"}',
      '      j: {type: string, default: "it\'s"}',
      '      k: {type: string, default: ""}',
      `    command: ${JSON.stringify(command)}`,
      "",
    ].join("\n");
  // What mlflow 3.17's `mlflow run` logged for each (checked with the real mlflow; pinned here, and compared with it below).
  // A text a shell would split or read is logged shell-quoted, as MLflow substitutes it (Python's shlex.quote): before, as it was (`a b`).
  const MLFLOW_LOGS = { a: "1.0", b: "1e3", c: "16", d: "True", e: "1.0", f: "0.5", g: "3", h: "plain", i: "'a b'", j: `'it'"'"'s'`, k: "''" };
  /** What the entry point's command gets: the same texts, as the shell hands them over. */
  const COMMAND_GETS = { ...MLFLOW_LOGS, i: "a b", j: "it's", k: "" };

  it("the run logs it, and its command gets it, as written where MLflow reads it so (1.0 stays 1.0, before: 1), else as MLflow reads it (0x10 is 16, true is True); logged shell-quoted as MLflow logs it ('a b')", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    const ran = join(root, "ran.txt");
    await writeFile(join(dir, "MLproject"), mlproject(`printf '%s|' {a} {b} {c} {d} {e} {f} {g} {h} {i} {j} {k} > "$RAN" && echo '{}' > "$CAIRN_OUTPUTS"`));
    const p = mlflowProject("p", { uri: dir, env: { RAN: ran } });
    const result = await (await flow("defaults").build(() => ({ out: p({}).$out })).run({ root, env: {} })).wait();
    expect(result.tasks.p?.status).toBe("succeeded");
    const run = await new LocalStore({ root }).getRun(result.tasks.p!.runId!);
    expect(run!.params).toEqual(MLFLOW_LOGS);
    expect(await readFile(ran, "utf8")).toBe(`${Object.values(COMMAND_GETS).join("|")}|`);
    await rm(root, { recursive: true, force: true });
  });

  it.skipIf(!hasVenv)("is what the real `mlflow run` logs for the same MLproject", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), mlproject("true"));
    const script = "import json, sys, mlflow, mlflow.projects\nr = mlflow.projects.run(sys.argv[1], env_manager='local', synchronous=True)\nprint(json.dumps(mlflow.get_run(r.run_id).data.params))";
    const out = execFileSync(VENV_PYTHON, ["-c", script, dir], { cwd: root, encoding: "utf8", env: { ...process.env, MLFLOW_TRACKING_URI: `sqlite:///${join(root, "mlflow.db")}` }, stdio: ["ignore", "pipe", "ignore"] });
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual(MLFLOW_LOGS);
    await rm(root, { recursive: true, force: true });
  }, 120_000);

  it("the key changes only for an entry point with a default whose text changed: other projects keep theirs", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), mlproject("true") + "  other:\n    parameters:\n      n: {type: float, default: 0.5}\n      s: {type: string, default: plain}\n      q: {type: string, default: \"a b\"}\n    command: \"true\"\n");
    const fingerprint = projectFingerprint(dir).code;
    expect(mlflowProject("main", { uri: dir }).definition.code).toMatch(new RegExp(`^mlflow-project:${fingerprint.replace(/[+]/g, "\\+")};entry=main;defaults=[0-9a-f]{16}$`));
    // A default logged shell-quoted (`'a b'`) runs with the same text: the key stays.
    expect(mlflowProject("other", { uri: dir, entryPoint: "other" }).definition.code).toBe(`mlflow-project:${fingerprint};entry=other`);
    // The fixture project's defaults (3, plain, data.txt) read alike: its key is what it was.
    expect(mlflowProject("fixture", { uri: PROJECT }).definition.code).toBe(`mlflow-project:${projectFingerprint(PROJECT).code};entry=main`);
    await rm(root, { recursive: true, force: true });
  });
});

describe.skipIf(!hasVenv)("mlflowProject() without MLflow tracking: the command directly", () => {
  it("substitutes parameters shell-quoted, applies defaults, uses the venv's python and returns CAIRN_OUTPUTS plus runId", async () => {
    const main = mlflowProject("main", { uri: PROJECT, python: VENV_PYTHON }).output<{ alpha: number; epochs: number; label: string; data: string; data_path: string; python: string; cwd: string; mlflow_run_id: string | null }>();
    const label = `it's $(echo pwned) "x"`;
    const f = flow("direct").build(() => ({ out: main({ alpha: 0.25, label }).$out }));
    const result = await (await f.run(await runOptions({ cache: false }))).wait();
    expect(result.error).toBeUndefined();
    const out = (result.outputs as { out: Record<string, unknown> }).out;
    expect(out).toMatchObject({ alpha: 0.25, epochs: 3, label, data: "fixture data", data_path: "data.txt", cwd: PROJECT.replace(/\/$/, ""), mlflow_run_id: null });
    expect(out.python).toBe(VENV_PYTHON);
    expect(out.runId).toBe(result.tasks.main!.runId);
  });
});

describe("the environment of an MLflow project's process", () => {
  it("turns MLflow's artifact download progress bar off (a tqdm bar is ten log lines per download), unless the user set it", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: bar\nentry_points:\n  main:\n    command: "printf '{\\"bar\\": \\"%s\\"}' \\"$MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR\\" > \\"$CAIRN_OUTPUTS\\""\n`);
    const bar = async (env?: Record<string, string>) => {
      const p = mlflowProject("p", { uri: dir, ...(env ? { env } : {}) }).output<{ bar: string }>();
      const result = await (await flow("bar").build(() => ({ bar: p({}).bar })).run(await runOptions({ cache: false }))).wait();
      return result.outputs;
    };
    expect(await bar()).toEqual({ bar: "false" });
    expect(await bar({ MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR: "true" })).toEqual({ bar: "true" });
    await rm(root, { recursive: true, force: true });
  });
});

describe("a project that declares a Python environment", () => {
  it("warns, once per run of the task, that python_env is not created and which Python runs the entry point instead", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: env-project\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: "echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    await writeFile(join(dir, "python_env.yaml"), "python: '3.11'\ndependencies:\n  - scikit-learn\n");
    const warningsOf = async (python: string) => {
      const p = mlflowProject("p", { uri: dir, python });
      const handle = await flow("env").build(() => ({ out: p({}).runId })).run(await runOptions({ cache: false }));
      const warnings: string[] = [];
      handle.on((e) => {
        if (e.type === "log" && e.level === "warn") warnings.push(e.message);
      });
      expect((await handle.wait()).error).toBeUndefined();
      return warnings;
    };
    const warnings = await warningsOf("/opt/py/bin/python");
    expect(warnings).toEqual([
      `MLflow project "env-project" declares python_env (python_env.yaml), which Cairn does not create: its entry point runs under the local Python ` +
        "(as `mlflow run --env-manager local` does), /opt/py/bin/python, first on PATH (it is the task's `python` option), with the packages installed there. " +
        "Install what python_env.yaml lists into that Python, or give the task `python` (or CAIRN_PYTHON) for one that has them.",
    ]);
    await writeFile(join(dir, "MLproject"), `name: env-project\nentry_points:\n  main:\n    command: "echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    expect(await warningsOf("/opt/py/bin/python")).toEqual([]);
    await rm(root, { recursive: true, force: true });
  });

  it("warns that docker_env is not honoured when the entry point runs directly (mode \"direct\", or no MLflow server): it runs on this machine", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: docker-project\ndocker_env:\n  image: python:3.11-slim\nentry_points:\n  main:\n    command: "echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    const warningsOf = async (mode: "auto" | "direct") => {
      const p = mlflowProject("p", { uri: dir, python: "/opt/py/bin/python", mode });
      const handle = await flow("docker").build(() => ({ out: p({}).runId })).run(await runOptions({ cache: false }));
      const warnings: string[] = [];
      handle.on((e) => {
        if (e.type === "log" && e.level === "warn") warnings.push(e.message);
      });
      expect((await handle.wait()).error).toBeUndefined();
      return warnings;
    };
    // Before: no word, and the entry point ran on the host Python as if in its container.
    const says = (why: string) =>
      `MLflow project "docker-project" declares docker_env (image python:3.11-slim), which only \`mlflow run\` honours, and the entry point runs directly (${why}): ` +
      "on this machine, not in the container, under the local Python, /opt/py/bin/python, first on PATH (it is the task's `python` option), with the packages installed there. " +
      'To run it in the container, track the flow with an MLflow server (MLFLOW_TRACKING_URI=http://...) and leave `mode` "auto" (Docker must be installed); or remove docker_env from MLproject.';
    expect(await warningsOf("auto")).toEqual([says("the flow is not tracked by an MLflow server")]);
    expect(await warningsOf("direct")).toEqual([says('the task\'s `mode: "direct"`')]);
    // `mlflow run` honours it: nothing to say then.
    expect(unusedEnvironmentWarning(loadMlproject(dir), "/opt/py/bin/python", undefined, undefined)).toBeUndefined();
    await rm(root, { recursive: true, force: true });
  });
});

describe("the code fingerprint of a project folder", () => {
  it("is the git tree of a clean checkout, else a digest of the content that skips mlruns and __pycache__", async () => {
    const repo = join(await tempRoot(), "repo");
    const dir = join(repo, "project");
    await mkdir(repo, { recursive: true });
    await cp(PROJECT, dir, { recursive: true });
    const git = (...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", "-C", repo, ...args], { encoding: "utf8" }).trim();
    const digest = projectFingerprint(dir);
    expect(digest.code).toMatch(/^sha256:[0-9a-f]{64}$/); // not a git repository yet
    expect(digest.code).toBe(`sha256:${folderDigest(PROJECT)}`); // content, not location

    git("init", "-q");
    git("add", ".");
    git("commit", "-q", "-m", "project");
    const clean = projectFingerprint(dir);
    expect(clean.code).toBe(`git-tree:${git("rev-parse", "HEAD:project")}`);
    expect(clean.gitCommit).toBe(git("rev-parse", "HEAD"));

    // A commit elsewhere in the repository leaves the project's fingerprint alone.
    await writeFile(join(repo, "other.txt"), "x");
    git("add", "other.txt");
    git("commit", "-q", "-m", "other");
    expect(projectFingerprint(dir).code).toBe(clean.code);

    // Ignored by the digest: mlruns, __pycache__. A changed file is a different digest.
    await writeFile(join(dir, "step.py"), "print('changed')\n");
    const dirty = projectFingerprint(dir);
    expect(dirty.code).toMatch(/^sha256:/);
    await mkdir(join(dir, "mlruns", "0"), { recursive: true });
    await writeFile(join(dir, "mlruns", "0", "meta.yaml"), "x");
    await mkdir(join(dir, "__pycache__"), { recursive: true });
    await writeFile(join(dir, "__pycache__", "step.cpython-311.pyc"), "x");
    expect(projectFingerprint(dir).code).toBe(dirty.code);
    await rm(repo, { recursive: true, force: true });
  });
});

describe("what an MLflow project task's key holds", () => {
  const git = (repo: string, ...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", "-C", repo, ...args], { encoding: "utf8" }).trim();

  it("a file git ignores in a clean checkout counts: a changed local config runs the project again; what a run writes to mlruns/ or a virtualenv changes nothing", async () => {
    const root = await tempRoot();
    const repo = join(root, "repo");
    const dir = join(repo, "proj");
    await mkdir(join(dir, "venv"), { recursive: true });
    await writeFile(join(dir, "MLproject"), `name: ignored\nentry_points:\n  main:\n    command: "mkdir -p mlruns && date +%s%N > mlruns/stamp && cat config.json > \\"$CAIRN_OUTPUTS\\""\n`);
    await writeFile(join(dir, ".gitignore"), "config.json\nmlruns/\nvenv/\n");
    await writeFile(join(dir, "config.json"), `{"factor": 1}`);
    await writeFile(join(dir, "venv", "pyvenv.cfg"), "home = /usr/bin\n");
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "project");
    const runIt = async () => {
      const p = mlflowProject("p", { uri: dir }).output<{ factor: number }>();
      const result = await (await flow("ignored").build(() => ({ factor: p({}).factor })).run({ root })).wait();
      return { outputs: result.outputs, status: result.tasks.p?.status, code: p.definition.code };
    };
    expect(await runIt()).toMatchObject({ outputs: { factor: 1 }, status: "succeeded" });
    await writeFile(join(dir, "config.json"), `{"factor": 99}`);
    expect(git(repo, "status", "--porcelain")).toBe(""); // git sees nothing
    expect(await runIt()).toMatchObject({ outputs: { factor: 99 }, status: "succeeded" });
    // The run rewrote mlruns/stamp; a file of the virtualenv changes too: neither is the project's code.
    await writeFile(join(dir, "venv", "installed.txt"), "numpy");
    const last = await runIt();
    expect(last).toMatchObject({ outputs: { factor: 99 }, status: "cached" });
    // Still the cheap tree id of a clean checkout (and its commit), plus the digest of the ignored files.
    expect(last.code).toMatch(/^mlflow-project:git-tree:[0-9a-f]{40}\+ignored:[0-9a-f]{64};/);
    expect(projectFingerprint(dir).gitCommit).toBe(git(repo, "rev-parse", "HEAD"));
    await rm(root, { recursive: true, force: true });
  });

  it("the flow's TypeScript in the project folder is not part of it: editing the flow or adding another runs no step again, in git or not", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: ts\nentry_points:\n  main:\n    command: "cat step.txt > /dev/null && echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    await writeFile(join(dir, "step.txt"), "v1");
    await writeFile(join(dir, "flow.ts"), "// the flow\n");
    const status = async () => {
      const p = mlflowProject("p", { uri: dir });
      const result = await (await flow("ts").build(() => ({ out: p({}).$out })).run({ root })).wait();
      return result.tasks.p?.status;
    };
    expect(await status()).toBe("succeeded");
    await writeFile(join(dir, "flow.ts"), "// the flow, a comment edited\n");
    await writeFile(join(dir, "flow2.ts"), "export {};\n");
    await writeFile(join(dir, "types.d.mts"), "export {};\n");
    expect(await status()).toBe("cached");
    await writeFile(join(dir, "step.txt"), "v2"); // the project's own file still counts
    expect(await status()).toBe("succeeded");

    git(root, "init", "-q");
    git(root, "add", ".");
    git(root, "commit", "-q", "-m", "project");
    expect(projectFingerprint(dir).code).toMatch(/^git-files:/);
    expect(await status()).toBe("succeeded"); // another kind of fingerprint: a clean checkout's
    await writeFile(join(dir, "flow.ts"), "// edited, not committed\n");
    await writeFile(join(dir, "flow3.ts"), "export {};\n");
    await rm(join(dir, "flow2.ts"));
    expect(projectFingerprint(dir).code).toMatch(/^git-files:/); // still the clean checkout's, not the content's (which an older entry matches)
    expect(await status()).toBe("cached");
    git(root, "add", ".");
    git(root, "commit", "-q", "-m", "flow");
    expect(await status()).toBe("cached");
    await writeFile(join(dir, "step.txt"), "v3");
    expect(await status()).toBe("succeeded");
    await rm(root, { recursive: true, force: true });
  });

  it("a project whose entry point runs a TypeScript file counts its TypeScript: an edited train.ts runs it again, in git or not", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: tsrun\nentry_points:\n  main:\n    command: "node --version > /dev/null && cat train.ts > /dev/null && echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    await writeFile(join(dir, "train.ts"), "console.log(1);\n");
    const status = async () => {
      const p = mlflowProject("p", { uri: dir });
      const result = await (await flow("tsrun").build(() => ({ out: p({}).$out })).run({ root })).wait();
      return result.tasks.p?.status;
    };
    expect(await status()).toBe("succeeded");
    expect(await status()).toBe("cached");
    await writeFile(join(dir, "train.ts"), "console.log(2);\n");
    expect(await status()).toBe("succeeded");
    git(root, "init", "-q");
    git(root, "add", ".");
    git(root, "commit", "-q", "-m", "project");
    await status();
    await writeFile(join(dir, "train.ts"), "console.log(3);\n"); // not committed: a changed checkout
    expect(await status()).toBe("succeeded");
    expect(runsTypeScript({ entryPoints: { a: { name: "a", command: "bun run x.mts", parameters: [] } } })).toBe(true);
    expect(runsTypeScript({ entryPoints: { a: { name: "a", command: "deno run 'src/y.cts' --x=1", parameters: [] } } })).toBe(true);
    expect(runsTypeScript({ entryPoints: { a: { name: "a", command: "python train.py --tsv data.tsv", parameters: [] } } })).toBe(false);
    await rm(root, { recursive: true, force: true });
  });

  it("a file git ignores (`.env`) or a link's target out of the folder is recorded by no plain digest of its content, in the key or the per-file record", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: secret\nentry_points:\n  main:\n    command: "true"\n`);
    await writeFile(join(dir, ".gitignore"), ".env\n");
    await writeFile(join(dir, ".env"), "PIN=1234\n");
    await writeFile(join(root, "token.txt"), "hunter2\n");
    await symlink("../token.txt", join(dir, "token.txt"));
    const hex = (data: string) => createHash("sha256").update(data).digest("hex");
    const plain = (content: string) => [hex(content), hex(hex(content))];
    const guessable = [...plain("PIN=1234\n"), ...plain("hunter2\n"), hex(`.env\0${hex("PIN=1234\n")}`), hex(`token.txt\0${hex("hunter2\n")}`)];
    const check = (secret = [".env", "token.txt"]) => {
      const { code, files } = projectFingerprint(dir);
      const recorded = files as Record<string, string>;
      expect(Object.keys(recorded).sort()).toEqual([".env", ".gitignore", "MLproject", "token.txt"]);
      for (const digest of guessable) {
        if (secret.includes(".env")) expect(code).not.toContain(digest);
        for (const name of secret) expect(digest.startsWith(recorded[name]!)).toBe(false);
      }
      return { code, files: recorded };
    };
    check(["token.txt"]); // a plain folder, no git: the link's target
    git(root, "init", "-q");
    git(root, "add", ".");
    git(root, "commit", "-q", "-m", "project");
    const clean = check();
    expect(clean.code).toMatch(/^git-tree:[0-9a-f]{40}\+ignored:[0-9a-f]{64}\+linked:[0-9a-f]{64}$/);
    await writeFile(join(dir, "MLproject"), `name: secret\nentry_points:\n  main:\n    command: "echo"\n`);
    const dirty = check(); // a changed checkout: `.env` as git ignores it
    await writeFile(join(dir, ".env"), "PIN=9999\n");
    expect(check().files[".env"]).not.toBe(dirty.files[".env"]); // a change still shows
    await rm(root, { recursive: true, force: true });
  });

  it("a miss names the project files that changed, in a git checkout or not; a folder of many files says how many", async () => {
    const root = await tempRoot();
    const repo = join(root, "repo");
    const dir = join(repo, "proj");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "MLproject"), `name: named\nentry_points:\n  main:\n    command: "cat train.txt > /dev/null && echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    await writeFile(join(dir, "train.txt"), "v1");
    await writeFile(join(dir, "evaluate.txt"), "v1");
    await writeFile(join(dir, ".gitignore"), "local.cfg\n");
    await writeFile(join(dir, "local.cfg"), "a");
    const changes = async () => {
      const p = mlflowProject("p", { uri: dir });
      const result = await (await flow("named").build(() => ({ out: p({}).$out })).run({ root })).wait();
      expect(result.tasks.p?.status).toBe("succeeded");
      const run = await new LocalStore({ root }).getRun(result.tasks.p!.runId!);
      const reason = JSON.parse(run!.tags["cairn.miss_reason"]!) as { kind: string; nearest?: { changes: string[] } };
      return reason.nearest?.changes ?? reason.kind;
    };
    expect(await changes()).toBe("new");
    await writeFile(join(dir, "train.txt"), "v2");
    expect(await changes()).toEqual(["project file `train.txt` changed"]);

    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "project");
    await changes(); // the clean checkout's fingerprint: every file by its git blob
    await writeFile(join(dir, "train.txt"), "v3"); // now a changed checkout, counted by content: only this file differs
    expect(await changes()).toEqual(["project file `train.txt` changed"]);
    await writeFile(join(dir, "local.cfg"), "b");
    await writeFile(join(dir, "new.txt"), "n");
    expect(await changes()).toEqual(["2 project files changed: `local.cfg`, `new.txt` (added)"]);

    await mkdir(join(dir, "data"));
    await Promise.all(Array.from({ length: PROJECT_FILES_RECORDED }, (_, i) => writeFile(join(dir, "data", `${i}.txt`), String(i))));
    await changes();
    await writeFile(join(dir, "data", "0.txt"), "changed");
    expect(await changes()).toEqual([`project files changed (${PROJECT_FILES_RECORDED + 6} files: too many to record which)`]);
    await rm(root, { recursive: true, force: true });
  });

  it("a link out of the project folder counts by its target's content, in a plain folder and in a clean checkout: a shrunk shared data file runs the project again", async () => {
    const root = await tempRoot();
    const repo = join(root, "repo");
    const dir = join(repo, "proj");
    await mkdir(join(dir, "data"), { recursive: true });
    await mkdir(join(root, "shared"));
    const rows = (n: number) => writeFile(join(root, "shared", "iris.csv"), "5.1,3.5\n".repeat(n));
    await rows(150);
    await symlink("../../../shared/iris.csv", join(dir, "data", "iris.csv"));
    await writeFile(join(dir, "MLproject"), `name: linked\nentry_points:\n  main:\n    command: "printf '{\\"rows\\": %s}' $(wc -l < data/iris.csv) > \\"$CAIRN_OUTPUTS\\""\n`);
    const runIt = async () => {
      const p = mlflowProject("p", { uri: dir }).output<{ rows: number }>();
      const result = await (await flow("linked").build(() => ({ rows: p({}).rows })).run({ root })).wait();
      return { outputs: result.outputs, status: result.tasks.p?.status, code: p.definition.code };
    };
    expect(await runIt()).toMatchObject({ outputs: { rows: 150 }, status: "succeeded" });
    await rows(75);
    expect(await runIt()).toMatchObject({ outputs: { rows: 75 }, status: "succeeded" });
    expect(await runIt()).toMatchObject({ outputs: { rows: 75 }, status: "cached" });

    // Committed, git records the link by its target's name: the target's content is added to the tree id.
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "project");
    expect(await runIt()).toMatchObject({ outputs: { rows: 75 }, code: expect.stringMatching(/^mlflow-project:git-tree:[0-9a-f]{40}\+linked:[0-9a-f]{64};/) });
    await rows(50);
    expect(git(repo, "status", "--porcelain")).toBe(""); // git sees nothing
    expect(await runIt()).toMatchObject({ outputs: { rows: 50 }, status: "succeeded" });
    expect(await runIt()).toMatchObject({ outputs: { rows: 50 }, status: "cached" });
    await rm(root, { recursive: true, force: true });
  });

  it("a link out of the folder named like a folder left out (`.venv`, `mlruns`), or to a virtualenv, is left out as that folder would be: the second run hits, in a plain folder and in a clean checkout", async () => {
    const root = await tempRoot();
    const repo = join(root, "repo");
    const dir = join(repo, "proj");
    await mkdir(dir, { recursive: true });
    for (const outside of ["venv", "runs", "env2"]) await mkdir(join(root, outside));
    await writeFile(join(root, "venv", "pyvenv.cfg"), "home = /usr/bin\n");
    await writeFile(join(root, "env2", "pyvenv.cfg"), "home = /usr/bin\n");
    await symlink("../../venv", join(dir, ".venv"));
    await symlink("../../runs", join(dir, "mlruns"));
    await symlink("../../env2", join(dir, "env")); // a virtualenv by its pyvenv.cfg, whatever its name
    await writeFile(join(dir, "train.py"), "print(1)\n");
    // Each run writes into all three, as `pip install` and MLflow's own store would.
    await writeFile(join(dir, "MLproject"), `name: venvlinks\nentry_points:\n  main:\n    command: "date +%s%N > mlruns/stamp && date +%s%N > .venv/installed && date +%s%N > env/installed && echo '{}' > \\"$CAIRN_OUTPUTS\\""\n`);
    const runIt = async () => {
      const p = mlflowProject("p", { uri: dir });
      const result = await (await flow("venvlinks").build(() => ({ out: p({}).$out })).run({ root })).wait();
      return { status: result.tasks.p?.status, files: p.definition.codeContents?.files };
    };
    expect(await runIt()).toMatchObject({ status: "succeeded" });
    expect(await runIt()).toMatchObject({ status: "cached", files: { MLproject: expect.any(String), "train.py": expect.any(String) } });
    git(repo, "init", "-q");
    git(repo, "add", ".");
    git(repo, "commit", "-q", "-m", "project");
    expect(await runIt()).toMatchObject({ status: "succeeded" }); // a clean checkout's fingerprint
    expect(await runIt()).toMatchObject({ status: "cached" });
    await rm(root, { recursive: true, force: true });
  });

  it.skipIf(process.getuid?.() === 0)("a link out of the folder whose target cannot be read fails the declaration, naming link and target (root reads it anyway)", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(join(root, "shared", "private"), { recursive: true });
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: unreadable\nentry_points:\n  main:\n    command: "true"\n`);
    await symlink("../shared", join(dir, "shared"));
    await chmod(join(root, "shared", "private"), 0o000);
    expect(() => mlflowProject("p", { uri: dir })).toThrow(/`shared` links to .*EACCES.*Make the target readable/);
    await chmod(join(root, "shared", "private"), 0o755);
    await rm(root, { recursive: true, force: true });
  });

  it("a `path` parameter counts by the content of the file it names: a data file outside the project, edited, runs it again, and plan and explain name the file", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    const data = join(root, "iris.csv");
    await writeFile(data, "5.1,3.5\n".repeat(150));
    await writeFile(join(dir, "MLproject"), `name: rows\nentry_points:\n  main:\n    parameters:\n      data_file: path\n    command: "printf '{\\"rows\\": %s}' $(wc -l < {data_file}) > \\"$CAIRN_OUTPUTS\\""\n`);
    const p = mlflowProject("p", { uri: dir }).output<{ rows: number }>();
    const f = flow("rows").params<{ data: string }>().build(({ params }) => ({ rows: p({ data_file: params.data }).rows }));
    const runIt = async () => {
      const result = await (await f.run({ root, params: { data } })).wait();
      return { outputs: result.outputs, status: result.tasks.p?.status };
    };
    expect(await runIt()).toEqual({ outputs: { rows: 150 }, status: "succeeded" });
    await writeFile(data, "5.1,3.5\n".repeat(76));
    const { tasks, params } = await openFlowCache(f.definition, { root, params: { data }, env: {} });
    const [planned] = await planFlow(f.definition, { params, cache: tasks });
    const explained = await explainTask(f.definition, "p", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(planned!.action).toBe("run");
    expect(planned!.reason).toContain(`file \`data_file\` (${data}) changed`);
    expect(explained.nearest?.changes.map((c) => c.message)).toEqual([`file \`data_file\` (${data}) changed`]);
    expect(await runIt()).toEqual({ outputs: { rows: 76 }, status: "succeeded" });
    expect(await runIt()).toEqual({ outputs: { rows: 76 }, status: "cached" });
    // A folder counts by its content too.
    const folder = join(root, "rows-dir");
    await mkdir(folder);
    await writeFile(join(folder, "a.csv"), "x\n");
    const d = mlflowProject("d", { uri: dir });
    const digest = async () => (await d.definition.inputFiles!({ data_file: folder })).data_file;
    const before = await digest();
    await writeFile(join(folder, "a.csv"), "x\ny\n");
    expect(await digest()).not.toBe(before);
    await rm(root, { recursive: true, force: true });
  });

  it("a `path` parameter's large folder out of the project is digested without blocking the event loop, to the digest the synchronous walk gives", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: big\nentry_points:\n  main:\n    parameters:\n      data_dir: path\n    command: "ls {data_dir}"\n`);
    const folder = join(root, "data");
    for (let i = 0; i < 40; i++) {
      await mkdir(join(folder, `part-${i}`), { recursive: true });
      await Promise.all(Array.from({ length: 50 }, (_, j) => writeFile(join(folder, `part-${i}`, `rows-${j}.csv`), `${i},${j}\n`.repeat(200))));
    }
    await writeFile(join(folder, "big.bin"), Buffer.alloc(24 << 20, 7)); // streamed in chunks
    // What the walk follows, leaves out or counts by name, as in a project folder.
    await writeFile(join(root, "elsewhere.csv"), "1\n");
    await symlink("../elsewhere.csv", join(folder, "linked.csv"));
    await symlink("part-0", join(folder, "linked-part"));
    await symlink("..", join(folder, "part-1", "up")); // a cycle
    await symlink("gone.csv", join(folder, "dangling.csv"));
    await mkdir(join(folder, "venv"));
    await writeFile(join(folder, "venv", "pyvenv.cfg"), "home = /usr/bin\n");
    await mkdir(join(folder, "__pycache__"));
    await writeFile(join(folder, "__pycache__", "x.pyc"), "x");
    const d = mlflowProject("d", { uri: dir });
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 1);
    const started = performance.now();
    const digest = (await d.definition.inputFiles!({ data_dir: folder })).data_dir;
    const ended = performance.now();
    clearInterval(timer);
    expect(digest).toBe(folderDigest(folder));
    // Before, the folder was walked and read synchronously: no timer fired until it was done.
    const marks = [started, ...ticks, ended];
    const longestStall = Math.max(...marks.slice(1).map((t, i) => t - marks[i]!));
    expect(ticks.length).toBeGreaterThan(10);
    expect(longestStall).toBeLessThan((ended - started) / 4);
    await rm(root, { recursive: true, force: true });
  });

  it("a `path` parameter that names something that cannot be read fails the task, naming parameter and path, rather than counting by its text only", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: unreadable\nentry_points:\n  main:\n    parameters:\n      data_file: path\n    command: "cat {data_file}"\n`);
    const d = mlflowProject("d", { uri: dir });
    const loop = join(root, "loop.csv");
    await symlink("loop.csv", loop); // realpath: ELOOP, not "nothing there"
    const error = await d.definition.inputFiles!({ data_file: loop }).then(() => undefined, (e: unknown) => e as Error);
    expect(error).toBeInstanceOf(MlflowProjectError);
    expect(error!.message).toContain(`parameter \`data_file\` names ${loop}`);
    expect(error!.message).toMatch(/ELOOP.*Make every file under it readable/);
    // Nothing there yet still counts by its text: the run says the path is missing.
    expect(await d.definition.inputFiles!({ data_file: join(root, "absent.csv") })).toEqual({});
    await rm(root, { recursive: true, force: true });
  });

  it.skipIf(process.getuid?.() === 0)("a `path` parameter's folder with an unreadable subfolder fails the task (root reads it anyway)", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: unreadable\nentry_points:\n  main:\n    parameters:\n      data_file: path\n    command: "cat {data_file}"\n`);
    const folder = join(root, "data");
    await mkdir(join(folder, "private"), { recursive: true });
    await chmod(join(folder, "private"), 0o000);
    const d = mlflowProject("d", { uri: dir });
    await expect(d.definition.inputFiles!({ data_file: folder })).rejects.toThrow(/EACCES/);
    await chmod(join(folder, "private"), 0o755);
    await rm(root, { recursive: true, force: true });
  });

  it("a link to a file of the project keeps counting by its name; a dangling one counts once its target is there", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: links\nentry_points:\n  main:\n    command: "true"\n`);
    await writeFile(join(dir, "a.csv"), "1\n");
    await symlink("a.csv", join(dir, "b.csv"));
    await symlink("../elsewhere.csv", join(dir, "c.csv"));
    const before = projectFingerprint(dir).code;
    await writeFile(join(root, "elsewhere.csv"), "2\n");
    const appeared = projectFingerprint(dir).code;
    expect(appeared).not.toBe(before);
    await writeFile(join(root, "elsewhere.csv"), "3\n");
    expect(projectFingerprint(dir).code).not.toBe(appeared);
    await rm(root, { recursive: true, force: true });
  });

  it("the folder relative path inputs resolve against, and the Python, are part of it: the same project with another cwd runs again", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: words\nentry_points:\n  main:\n    parameters:\n      data_file: path\n    command: "printf '{\\"words\\": %s}' $(wc -w < {data_file}) > \\"$CAIRN_OUTPUTS\\""\n`);
    for (const [folder, words] of [["d1", "a b c"], ["d2", "a b c d e"]] as const) {
      await mkdir(join(root, folder));
      await writeFile(join(root, folder, "data.txt"), words);
    }
    const counted = async (cwd: string) => {
      const p = mlflowProject("p", { uri: dir, cwd: join(root, cwd) }).output<{ words: number }>();
      const result = await (await flow("cwd").build(() => ({ words: p({ data_file: "data.txt" }).words })).run({ root })).wait();
      return { outputs: result.outputs, status: result.tasks.p?.status };
    };
    expect(await counted("d1")).toEqual({ outputs: { words: 3 }, status: "succeeded" });
    expect(await counted("d2")).toEqual({ outputs: { words: 5 }, status: "succeeded" });
    expect(await counted("d2")).toEqual({ outputs: { words: 5 }, status: "cached" });
    const code = (python?: string) => mlflowProject("p", { uri: dir, ...(python ? { python } : {}) }).definition.code;
    expect(code("/usr/bin/python3")).not.toBe(code());
    expect(code("/usr/bin/python3")).not.toBe(code("/opt/other/bin/python"));
    await rm(root, { recursive: true, force: true });
  });
});

describe.skipIf(!hasVenv)("what an MLflow project's own mlflow calls write, with no MLFLOW_TRACKING_URI", () => {
  const git = (repo: string, ...args: string[]) => execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", "-C", repo, ...args], { encoding: "utf8" }).trim();

  it("mlflow.db (MLflow 3's default store, in the project folder) and a `cairn report` page there change nothing: the next run is a hit, in a plain folder and in a git checkout", async () => {
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: logs\nentry_points:\n  main:\n    command: "python step.py"\n`);
    await writeFile(join(dir, "step.py"), `import mlflow, cairn_task\nmlflow.log_metric("acc", 0.9)\ncairn_task.set_outputs(acc=0.9)\n`);
    const runIt = async () => {
      const p = mlflowProject("p", { uri: dir, python: VENV_PYTHON }).output<{ acc: number }>();
      const result = await (await flow("logs").build(() => ({ acc: p({}).acc })).run({ root })).wait();
      return { outputs: result.outputs, status: result.tasks.p?.status, code: p.definition.code };
    };
    expect(await runIt()).toMatchObject({ outputs: { acc: 0.9 }, status: "succeeded" });
    expect(existsSync(join(dir, "mlflow.db"))).toBe(true); // the step's own mlflow wrote it
    await writeFile(join(dir, "cairn-report-0123abcd.html"), "<html></html>");
    expect(await runIt()).toMatchObject({ status: "cached" });

    // A clean checkout: the untracked mlflow.db and report leave it clean, its tree id the fingerprint.
    await writeFile(join(dir, ".gitignore"), "mlruns/\n");
    git(dir, "init", "-q");
    git(dir, "add", "MLproject", "step.py", ".gitignore");
    git(dir, "commit", "-q", "-m", "project");
    const first = await runIt();
    expect(first).toMatchObject({ status: "succeeded", code: expect.stringMatching(/^mlflow-project:git-tree:/) });
    expect(await runIt()).toMatchObject({ status: "cached", code: first.code });
    await rm(root, { recursive: true, force: true });
  }, 120_000);
});

let server: MlflowServer | undefined;

describe.skipIf(!hasVenv)("mlflowProject() with an MLflow server: `mlflow run` inside the task's run", () => {
  beforeAll(async () => {
    server = await startMlflowServer();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("the project's own mlflow calls land in the task's run, with the project tags", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    // MLFLOW_EXPERIMENT_NAME in the environment must not clash with `mlflow run --experiment-id`.
    const log = mlflowProject("log", { uri: PROJECT, entryPoint: "log", python: VENV_PYTHON, env: { MLFLOW_EXPERIMENT_NAME: "elsewhere" } }).output<{ mlflow_run_id: string }>();
    const f = flow("project-run").build(() => ({ out: log({ alpha: 0.25 }).$out }));
    const result = await (await f.run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.error).toBeUndefined();
    const taskRunId = result.tasks.log!.runId!;
    const out = (result.outputs as { out: { mlflow_run_id: string; runId: string } }).out;
    expect(out).toEqual({ mlflow_run_id: taskRunId, runId: taskRunId });

    const run = (await tracker.client.getRun(taskRunId))!;
    expect(run.params).toMatchObject({ alpha: "0.25", from_project: "yes" });
    expect(run.metrics.score).toBe(0.5);
    expect(run.tags).toMatchObject({ "mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "log", "mlflow.source.name": PROJECT.replace(/\/$/, "") });
    expect(run.info.status).toBe("FINISHED");
    // `mlflow run --run-id` created no run of its own: the flow run and the task run only.
    const runs = await tracker.client.searchRuns({ experimentIds: [run.info.experimentId] });
    expect(runs.map((r) => r.info.runId).sort()).toEqual([result.runId, taskRunId].sort());
  }, 120_000);

  it("the task's run holds every parameter the entry point ran with, its defaults too, as `mlflow run` logs them", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    const main = mlflowProject("main", { uri: PROJECT, python: VENV_PYTHON });
    const f = flow("project-defaults").build(() => ({ out: main({ alpha: 1, label: "given" }).$out }));
    const result = await (await f.run(await runOptions({ tracker, cache: false }))).wait();
    expect(result.error).toBeUndefined();
    const run = (await tracker.client.getRun(result.tasks.main!.runId!))!;
    expect(run.params).toEqual({ alpha: "1", label: "given", epochs: "3", data: "data.txt" });
  }, 120_000);

  it("cli: true starts `python -m mlflow run` itself, in the task's run too", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    const main = mlflowProject("main", { uri: PROJECT, python: VENV_PYTHON, cli: true }).output<{ mlflow_run_id: string; epochs: number }>();
    const f = flow("project-cli").build(() => ({ out: main({ alpha: 1, epochs: 5 }).$out }));
    const events: string[] = [];
    const handle = await f.run(await runOptions({ tracker, cache: false }));
    handle.on((e) => {
      if (e.type === "log") events.push(e.message);
    });
    const result = await handle.wait();
    expect(result.error).toBeUndefined();
    const out = (result.outputs as { out: { mlflow_run_id: string; epochs: number; runId: string } }).out;
    expect(out).toMatchObject({ mlflow_run_id: result.tasks.main!.runId, epochs: 5, runId: result.tasks.main!.runId });
    expect(events.some((m) => m.includes("=== Running command 'python step.py --alpha 1 --epochs 5 --label plain --data"))).toBe(true);
  }, 120_000);

  it("a failed entry point's own exception is the last line of its error, not MLflow's `Run (ID ...) failed`, as when run directly", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    const root = await tempRoot();
    const dir = join(root, "proj");
    await mkdir(dir);
    await writeFile(join(dir, "MLproject"), `name: boom\nentry_points:\n  main:\n    command: "python boom.py"\n`);
    await writeFile(join(dir, "boom.py"), `raise RuntimeError("train exploded on purpose")\n`);
    const p = mlflowProject("p", { uri: dir, python: VENV_PYTHON });
    const result = await (await flow("project-fails").build(() => ({ out: p({}).runId })).run(await runOptions({ tracker, cache: false }))).wait();
    const error = result.tasks.p!.error!;
    expect(error.name).toBe("ProcessFailedError");
    // Before: `mlflow.exceptions.ExecutionException: Run (ID '…') failed` came last, and `cairn show` kept only it of the traceback.
    const stderr = error.message.split("\n").filter((line) => line.startsWith("  | "));
    expect(stderr.at(-1)).toBe("  | RuntimeError: train exploded on purpose");
    expect(error.message).not.toContain("ExecutionException");
    await rm(root, { recursive: true, force: true });
  }, 120_000);

  it("a missing parameter creates no run at all", async () => {
    const tracker = MlflowTracker.fromEnv({}, server!.uri);
    const before = await tracker.client.searchRuns({ experimentIds: (await tracker.client.searchExperiments()).map((e) => e.experimentId) });
    const touch = mlflowProject("touch", { uri: PROJECT, entryPoint: "touch" });
    expect(() => flow("no-run").build(() => ({ out: touch({ count: 1 }).$out }))).toThrow(/required parameter "marker"/);
    const after = await tracker.client.searchRuns({ experimentIds: (await tracker.client.searchExperiments()).map((e) => e.experimentId) });
    expect(after.length).toBe(before.length);
    expect(await tracker.client.getExperimentByName("no-run")).toBeUndefined();
  });
});
