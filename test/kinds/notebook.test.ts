import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { flow, task, type Artifact } from "@cairn/dsl";
import { notebook } from "../../packages/process/src/index.ts";
import { notebookCodeDigest } from "../../packages/process/src/notebook/run-notebook.ts";
import { fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON } from "./helpers.ts";

const data = task("data").run(async (_, ctx) => ({ data: await ctx.artifacts.write("rows.json", "[1, 2, 3, 4]") }));

describe.skipIf(!hasVenv)("notebook()", () => {
  it("injects inputs as parameters, returns set_outputs plus the executed notebook and its HTML", async () => {
    const report = notebook("report", fixture("report.ipynb"), { python: VENV_PYTHON })
      .input<{ title: string; factor: number; data: Artifact }>()
      .output<{ total: number; title: string; rows: number }>();
    const f = flow("nb").build(() => {
      const r = report({ title: "Quarterly", factor: 10, data: data().data });
      return { total: r.total, title: r.title, rows: r.rows, notebook: r.notebook, html: r.html };
    });
    const out = await (await f.run(await runOptions())).outputs();
    expect(out).toMatchObject({ total: 100, title: "Quarterly", rows: 4 });
    expect(out.notebook).toMatchObject({ kind: "cairn.artifact", artifactPath: "report.ipynb" });
    expect(out.html).toMatchObject({ kind: "cairn.artifact", artifactPath: "report.html" });
    const executed = JSON.parse(readFileSync(out.notebook.path, "utf8")) as { cells: Array<{ source: string | string[]; metadata: { tags?: string[] } }> };
    const injected = executed.cells.find((c) => c.metadata.tags?.includes("injected-parameters"));
    expect([injected?.source].flat().join("")).toContain('title = "Quarterly"');
    const html = readFileSync(out.html.path, "utf8");
    expect(html).toContain("<html");
    expect(html).toContain("Quarterly: total=100");
  }, 120_000);

  it("validates the notebook's own outputs with .output(schema) and keeps { notebook, html }", async () => {
    const ok = notebook("ok", fixture("report.ipynb"), { python: VENV_PYTHON }).output(z.object({ total: z.number(), title: z.string() }));
    const { out } = await (await flow("nb-schema").build(() => ({ out: ok({ title: "t", factor: 2, data: data().data }).$out })).run(await runOptions())).outputs();
    expect(out).toMatchObject({ total: 20, title: "t", notebook: { artifactPath: "report.ipynb" }, html: { artifactPath: "report.html" } });

    const bad = notebook("bad", fixture("report.ipynb"), { python: VENV_PYTHON }).output(z.object({ total: z.string() }));
    const result = await (await flow("nb-bad").build(() => ({ x: bad({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.bad!.error).toMatchObject({ name: "OutputValidationError", message: expect.stringContaining("total") });
  }, 120_000);

  it("fingerprints the code cells only, not outputs", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    for (const c of nb.cells) if (c.cell_type === "code") Object.assign(c, { execution_count: 7, outputs: [{ output_type: "stream", name: "stdout", text: ["x\n"] }] });
    await writeFile(join(dir, "with-outputs.ipynb"), JSON.stringify(nb));
    expect(notebookCodeDigest(join(dir, "with-outputs.ipynb"))).toBe(notebookCodeDigest(fixture("report.ipynb")));
    (nb.cells[2]!.source as string[]).push("print('changed')\n");
    await writeFile(join(dir, "changed.ipynb"), JSON.stringify(nb));
    expect(notebookCodeDigest(join(dir, "changed.ipynb"))).not.toBe(notebookCodeDigest(fixture("report.ipynb")));
    expect(notebook("fp", fixture("report.ipynb")).definition).toMatchObject({ kind: "notebook", code: `sha256:${notebookCodeDigest(fixture("report.ipynb"))}` });
  });

  it("says to run scripts/setup-python.sh when papermill is missing", async () => {
    const venv = join(await tempRoot(), "bare");
    execFileSync("python3", ["-m", "venv", "--without-pip", venv]);
    const t = notebook("bare", fixture("report.ipynb"), { python: join(venv, "bin", "python") });
    const result = await (await flow("bare").build(() => ({ x: t({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.bare!.error).toMatchObject({
      name: "NotebookDependencyError",
      message: expect.stringMatching(/papermill, nbconvert, nbformat are not installed.*scripts\/setup-python\.sh/),
    });
  });

  it("fails with the failing cell when the notebook raises", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["raise ValueError('no good')\n"] });
    await writeFile(join(dir, "raises.ipynb"), JSON.stringify(nb));
    const t = notebook("raises", join(dir, "raises.ipynb"), { python: VENV_PYTHON });
    const result = await (await flow("raises").build(() => ({ x: t({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.raises!.error).toMatchObject({ name: "ProcessFailedError", message: expect.stringContaining("ValueError: no good") });
  }, 120_000);
});
