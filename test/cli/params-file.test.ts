/** `--params-file FILE` of run, plan and explain: JSON or YAML params under the -p ones, checked as -p values are. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, fixture, tmp } from "./helpers.ts";

const lists = fixture("list-params.flow.ts");

/** A fresh folder holding `files` (name to text). */
async function folderWith(files: Record<string, string>): Promise<string> {
  const cwd = await tmp("cairn-cli-params-file-");
  for (const [name, text] of Object.entries(files)) await writeFile(join(cwd, name), text);
  return cwd;
}

const outputsOf = (r: { json: Array<Record<string, unknown>> }) => r.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs;

describe("cairn run --params-file", () => {
  it("takes YAML by its extension and JSON otherwise, each -p replacing the file's value of its name", async () => {
    const cwd = await folderWith({
      "params.yaml": 'dates:\n  - 2026-01-01\n  - 2026-01-02\nrun: "20260102"\n',
      "params.json": '{"dates": ["x"], "note": "from the file"}',
    });
    const yaml = await cairn(["run", lists, "--json", "--no-tracking", "--params-file", "params.yaml"], { cwd });
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(outputsOf(yaml)).toEqual({ out: { dates: ["2026-01-01", "2026-01-02"], run: "20260102", note: "none" } });
    const json = await cairn(["run", lists, "--json", "--no-tracking", "--params-file", "params.json", "-p", "note=cli", "-p", 'dates=["y"]'], { cwd });
    expect(json.code, json.stderr).toBe(0);
    expect(outputsOf(json)).toEqual({ out: { dates: ["y"], run: "20260101", note: "cli" } });
  });

  it("checks the file's values as -p values are, naming the file and the key (exit 2)", async () => {
    const cwd = await folderWith({ "wrong.json": '{"dates": "2026-01-01", "run": 5}', "typo.yml": "dates: [a]\ndtes: [b]\n", "part.json": '{"run": "20260101"}' });
    const wrong = await cairn(["run", lists, "--no-tracking", "--params-file", "wrong.json"], { cwd });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('dates: Invalid input: expected array, received string (got "2026-01-01" for "dates" in wrong.json)');
    expect(wrong.stderr).toContain('run: Invalid input: expected string, received number (got 5 for "run" in wrong.json)');
    const typo = await cairn(["run", lists, "--no-tracking", "--params-file", "typo.yml"], { cwd });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('ParamError: Flow "list-params" has no param "dtes" (did you mean "dates"?).');
    expect(typo.stderr).toContain('(got ["b"] for "dtes" in typo.yml)');
    const part = await cairn(["run", lists, "--no-tracking", "--params-file", "part.json"], { cwd });
    expect(part.stderr).toContain('dates: missing (Invalid input: expected array, received undefined): pass -p dates=VALUE, or set "dates" in part.json');
  });

  it("refuses, before the flow loads, a file that is missing, does not parse (with its line and column) or holds no object (exit 2)", async () => {
    const cwd = await folderWith({
      "bad.json": '{"dates": ["x",\n  "note": 1}',
      "bad.yaml": "dates: [a,\nb: 2\n",
      "list.json": "[1, 2]",
      "empty.yml": "",
      "proto.json": '{"__proto__": {"dates": ["x"]}}',
    });
    const said = async (file: string) => {
      const r = await cairn(["run", lists, "--no-tracking", "--params-file", file], { cwd });
      expect(r.code, r.stderr).toBe(2);
      return r.stderr;
    };
    expect(await said("nope.json")).toContain("UsageError: Cannot read the params file nope.json (--params-file): ENOENT: no such file or directory");
    expect(await said("bad.json")).toContain(
      "UsageError: The params file bad.json (--params-file) is not valid JSON: Expected ',' or ']' after array element in JSON at position 24 (line 2, column 9). Fix it; a file named .yaml or .yml is read as YAML.",
    );
    expect(await said("bad.yaml")).toContain(
      "UsageError: The params file bad.yaml (--params-file) is not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1. Fix it;",
    );
    expect(await said("list.json")).toContain('UsageError: Expected the params file list.json (--params-file) to hold an object of param values by name ({"dates": ["2026-01-01"]}), got an array at its top level.');
    expect(await said("empty.yml")).toContain("got nothing (an empty document, or null) at its top level.");
    expect(await said("proto.json")).toContain("got `__proto__`: it cannot be a param's name");
  });

  it("refuses an alias to no anchor, a value that holds itself and bytes (exit 2, no stack, nothing of the file quoted); takes JSON after a byte-order mark", async () => {
    const cwd = await folderWith({
      "alias.yaml": "dates: *SECRETTOKEN123\n",
      "cycle.yaml": "dates: &x [*x]\n",
      "bytes.yaml": "dates: !!binary aGVsbG8=\n",
      "bom.json": '\uFEFF{"dates": ["2026-01-01"]}',
    });
    const said = async (file: string) => {
      const r = await cairn(["run", lists, "--no-tracking", "--params-file", file], { cwd });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      return r.stderr;
    };
    const alias = await said("alias.yaml");
    expect(alias).toContain("UsageError: The params file alias.yaml (--params-file) is not valid YAML: an alias (`*name`) names no anchor (`&name`) before it");
    expect(alias).not.toContain("SECRETTOKEN123");
    expect(await said("cycle.yaml")).toContain("UsageError: The params file cycle.yaml (--params-file) holds a value that holds itself (an alias inside its own anchor), which no param value can be.");
    expect(await said("bytes.yaml")).toContain("holds a `!!binary` value (bytes)");
    const bom = await cairn(["run", lists, "--json", "--no-tracking", "--params-file", "bom.json"], { cwd });
    expect(bom.code, bom.stderr).toBe(0);
    expect(outputsOf(bom)).toEqual({ out: { dates: ["2026-01-01"], run: "20260101", note: "none" } });
  });

  it("is taken by plan and explain as by run", async () => {
    const cwd = await folderWith({ "params.yml": "dates: [a]\n" });
    const plan = await cairn(["plan", lists, "--no-tracking", "--params-file", "params.yml", "--json"], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject([{ task: "echo", action: "run" }]);
    const explain = await cairn(["explain", lists, "echo", "--no-tracking", "--params-file", "params.yml"], { cwd });
    expect(explain.code, explain.stderr).toBe(0);
    const without = await cairn(["plan", lists, "--no-tracking"], { cwd });
    expect(without.stderr).toContain("dates: missing");
  });

  it("quotes no part of a secret of --secrets in a refused value of the file, whose quote is cut", async () => {
    const secret = "sup3r-secret-value-42";
    const cwd = await folderWith({ "secrets.env": `TOKEN=${secret}\n`, "params.json": JSON.stringify({ rows: `${"x".repeat(70)}${secret}` }) });
    const r = await cairn(["run", fixture("../../fixtures/ok.flow.ts"), "--no-tracking", "--secrets", "secrets.env", "--params-file", "params.json"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('rows: Invalid input: expected number, received string (got a value that carries a secret of --secrets for "rows" in params.json)');
    // Before: the value cut at 77 characters kept "sup3r-" of it, which masking the whole secret missed.
    expect(r.stderr).not.toContain("sup3r");
  });

  it("plan masks a secret of --secrets in a refused -p value, as run does", async () => {
    const cwd = await folderWith({ "secrets.env": "TOKEN=sup3r-secret-value-42\n" });
    for (const command of ["run", "plan"]) {
      const r = await cairn([command, fixture("../../fixtures/ok.flow.ts"), "--no-tracking", "--secrets", "secrets.env", "-p", "rows=sup3r-secret-value-42"], { cwd });
      expect(r.code).toBe(2);
      // Before: plan printed "(got -p rows=sup3r-secret-value-42)".
      expect(r.stderr).toContain("(got -p rows=***)");
      expect(r.stderr).not.toContain("sup3r");
    }
  });
});
