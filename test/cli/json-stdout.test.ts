/**
 * JSON output keeps stdout JSON: what a flow file prints while it loads (at its top level, in
 * `build()`) or an `--import` module prints goes to stderr under `run --json`, `graph --json` /
 * `--format json`, `plan --json` and `explain --json`, where it came first on stdout and broke
 * the parse. cli() in an app gives process.stdout back when it resolves.
 */
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { childEnv, start } from "../cache/helpers.ts";
import { cairn, fixture, repo, tmp } from "./helpers.ts";

const noisy = fixture("noisy-load.flow.ts");
const NOISE = ["console.log while the flow file loads\n", "raw write while the flow file loads\n", "console.log in build()\n"];

/** Parses `text` as JSON, the stream's first lines in the failure's message. */
const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Expected stdout to be one JSON document, got text that does not parse, starting: ${JSON.stringify(text.slice(0, 200))}`);
  }
};

describe("a flow file that prints while it loads leaves JSON output JSON", () => {
  it("run --json: stdout is one event a line, the flow's prints on stderr", async () => {
    const r = await cairn(["run", noisy, "--json", "--no-report"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    for (const line of lines) expect(() => JSON.parse(line), `stdout line ${JSON.stringify(line)} is no JSON event`).not.toThrow();
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ type: "flow", status: "succeeded", outputs: { n: 1 } });
    for (const line of NOISE) expect(r.stderr).toContain(line);
  });

  it.each([
    ["graph --json", ["graph", noisy, "--json"]],
    ["graph --format json", ["graph", noisy, "--format", "json"]],
    ["graph -f json", ["graph", noisy, "-f", "json"]],
    ["plan --json", ["plan", noisy, "--json"]],
    ["explain --json", ["explain", noisy, "one", "--json"]],
  ])("%s: stdout parses, the flow's prints on stderr", async (_name, args) => {
    const r = await cairn(args);
    expect(r.code, r.stderr).toBe(0);
    expect(parsed(r.stdout)).toBeTruthy();
    for (const line of NOISE) expect(r.stderr).toContain(line);
  });

  it("an --import module that prints while it loads: on stderr too", async () => {
    const r = await cairn(["plan", noisy, "--json", "--import", fixture("noisy-import.ts")]);
    expect(r.code, r.stderr).toBe(0);
    expect(parsed(r.stdout)).toEqual([expect.objectContaining({ task: "one" })]);
    expect(r.stderr).toContain("console.log while the --import module loads\n");
  });

  it("without JSON output, what the flow prints stays on stdout", async () => {
    const r = await cairn(["graph", noisy]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(NOISE[0]);
    expect(r.stdout).toContain("flowchart");
  });
});

describe("cli() in an app gives process.stdout back", () => {
  const app = join(repo, "test/cli/fixtures/embed/app-json.ts");

  it.each([
    ["run --json", ["run", noisy, "--json", "--no-report", "--no-tracking", "--root"]],
    ["graph --json", ["graph", noisy, "--json"]],
  ])("after %s, the app's own line is on stdout, after the JSON", async (_name, given) => {
    // The app runs in the workspace (where tsx and cairn-dag resolve); a run's state goes to a temp folder.
    const args = given.at(-1) === "--root" ? [...given, await tmp("cairn-cli-json-app-")] : given;
    const exit = await start(process.execPath, ["--import", "tsx", app, ...args], { env: childEnv() }).done;
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout.endsWith("[app] cli() resolved 0\n"), exit.stdout).toBe(true);
    const json = exit.stdout.slice(0, -"[app] cli() resolved 0\n".length);
    if (args[0] === "run") for (const line of json.trim().split("\n")) expect(() => JSON.parse(line), line).not.toThrow();
    else expect(parsed(json)).toBeTruthy();
    for (const line of NOISE) expect(exit.stderr).toContain(line);
  });

  it("with two --json runs overlapping, each one's JSON is on stdout, and stdout is the app's again once both ended", async () => {
    // Each call took process.stdout.write as it found it: the second took the first's diversion,
    // its JSON went to stderr, and ending last it put that diversion back for good.
    const dir = await tmp("cairn-cli-json-overlap-");
    await symlink(join(repo, "node_modules"), join(dir, "node_modules"));
    await writeFile(join(dir, "package.json"), `{ "type": "module" }\n`);
    const flowText = (name: string, ms: number) =>
      `import { flow, task } from "cairn-dag";\nconst t = task("t").run(async () => { await new Promise((r) => setTimeout(r, ${ms})); return { v: "${name}" }; });\nexport default flow("${name}").build(() => ({ v: t({}).v }));\n`;
    await writeFile(join(dir, "short.flow.ts"), flowText("short", 300));
    await writeFile(join(dir, "long.flow.ts"), flowText("long", 1200));
    const run = (file: string) => `cli(["run", "${file}", "--json", "--no-report", "--no-tracking", "--root", ".cairn-${file}"])`;
    await writeFile(
      join(dir, "app.ts"),
      `import { cli } from "cairn-dag";\n` +
        // The third fails before its run starts, while the others hold stdout: its error event goes to stdout too.
        `const codes = await Promise.all([${run("short.flow.ts")}, ${run("long.flow.ts")}, (async () => { await new Promise((r) => setTimeout(r, 100)); return ${run("missing.flow.ts")}; })()]);\n` +
        `console.log("[app] cli() resolved " + codes.join(","));\n`,
    );
    const exit = await start(process.execPath, ["--import", "tsx", "app.ts"], { cwd: dir, env: childEnv() }).done;
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout.endsWith("[app] cli() resolved 0,0,2\n"), `stdout: ${exit.stdout}\nstderr: ${exit.stderr}`).toBe(true);
    const events = exit.stdout
      .slice(0, -"[app] cli() resolved 0,0,2\n".length)
      .trim()
      .split("\n")
      .map((line) => parsed(line) as { type: string; status?: string; flow?: string; outputs?: unknown });
    const ends = events.filter((e) => e.type === "flow" && e.status === "succeeded").map((e) => e.outputs);
    expect(ends).toEqual([{ v: "short" }, { v: "long" }]);
    expect(events.filter((e) => e.type === "error")).toHaveLength(1);
    // No event went to stderr.
    expect(exit.stderr).not.toMatch(/^\{"type":/m);
  });
});
