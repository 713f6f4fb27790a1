import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { flow, task, type Artifact } from "@cairn/dsl";
import { LocalStore } from "@cairn/core";
import { notebook } from "../../packages/process/src/index.ts";
import { notebookCodeDigest } from "../../packages/process/src/notebook/run-notebook.ts";
import { type Exit, cairnBin, childEnv, start } from "../cache/helpers.ts";
import { alive, fixture, hasVenv, runOptions, tempRoot, VENV_PYTHON, waitFor } from "./helpers.ts";

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

  it("runs a notebook whose file name an artifact name may not hold, its artifacts named with \"_\" in place", async () => {
    const dir = await tempRoot();
    await writeFile(join(dir, "results #1; 50%?.ipynb"), readFileSync(fixture("report.ipynb")));
    const t = notebook("results", join(dir, "results #1; 50%?.ipynb"), { python: VENV_PYTHON }).output<{ total: number }>();
    const { r } = await (await flow("nb-names").build(() => ({ r: t({ title: "t", factor: 3, data: data().data }).$out })).run(await runOptions())).outputs();
    expect(r.total).toBe(30);
    expect(r.notebook).toMatchObject({ artifactPath: "results _1_ 50__.ipynb" });
    expect(r.html).toMatchObject({ artifactPath: "results _1_ 50__.html" });
    expect(readFileSync(r.html.path, "utf8")).toContain("t: total=30");
  }, 120_000);

  it("renders HTML that loads no script from a CDN, titled with the notebook's stem", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "markdown", metadata: {}, source: ["The area is $\\pi r^2$.\n"] });
    await writeFile(join(dir, "Quarterly report.ipynb"), JSON.stringify(nb));
    const t = notebook("quarterly", join(dir, "Quarterly report.ipynb"), { python: VENV_PYTHON });
    const { html } = await (await flow("nb-html").build(() => ({ html: t({ data: null }).html })).run(await runOptions())).outputs();
    const page = readFileSync(html.path, "utf8");
    expect(page).toContain("<title>Quarterly report</title>");
    expect(page).toContain("The area is $\\pi r^2$.");
    expect(page).not.toMatch(/<script[^>]*\bsrc=/);
    expect(page).not.toContain("cdnjs.cloudflare.com");
  }, 120_000);

  it("says to drop html: false when a task takes the html output of a notebook declared without it", async () => {
    const publish = task("publish").input<{ page: unknown }>().run(({ page }) => ({ got: page === undefined ? "nothing" : "a page" }));
    const plain = notebook("plain", fixture("report.ipynb"), { python: VENV_PYTHON, html: false }) as unknown as ReturnType<typeof notebook>;
    // Output schema or not: the schema checks what the notebook wrote, and html is never there.
    const checked = notebook("checked", fixture("report.ipynb"), { python: VENV_PYTHON, html: false }).output(z.object({ total: z.number() })) as unknown as ReturnType<typeof notebook>;
    for (const t of [plain, checked]) {
      const result = await (await flow("nb-no-html").build(() => ({ x: publish({ page: t({ data: null }).html }).got })).run(await runOptions())).wait();
      const message = result.tasks.publish!.error?.message ?? "";
      expect(result.tasks.publish!.error?.name, message).toBe("MissingOutputError");
      expect(message).toContain(`Task "publish" takes ${t.definition.name}.html, but task "${t.definition.name}" has no output "html"`);
      expect(message).toContain("it is declared with `html: false`, so it renders no HTML; drop `html: false` from its notebook() options to have it.");
      expect(message).not.toContain("set_outputs");
    }
  }, 120_000);

  it("validates the notebook's own outputs with .output(schema) and keeps { notebook, html }", async () => {
    const ok = notebook("ok", fixture("report.ipynb"), { python: VENV_PYTHON }).output(z.object({ total: z.number(), title: z.string() }));
    const { out } = await (await flow("nb-schema").build(() => ({ out: ok({ title: "t", factor: 2, data: data().data }).$out })).run(await runOptions())).outputs();
    expect(out).toMatchObject({ total: 20, title: "t", notebook: { artifactPath: "report.ipynb" }, html: { artifactPath: "report.html" } });

    const bad = notebook("bad", fixture("report.ipynb"), { python: VENV_PYTHON }).output(z.object({ total: z.string() }));
    const result = await (await flow("nb-bad").build(() => ({ x: bad({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.bad!.error).toMatchObject({ name: "OutputValidationError", message: expect.stringContaining("total") });
  }, 120_000);

  it("fingerprints the code cells, the kernel and where the parameters go, not outputs", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    for (const c of nb.cells) if (c.cell_type === "code") Object.assign(c, { execution_count: 7, outputs: [{ output_type: "stream", name: "stdout", text: ["x\n"] }] });
    await writeFile(join(dir, "with-outputs.ipynb"), JSON.stringify(nb));
    expect(notebookCodeDigest(join(dir, "with-outputs.ipynb"))).toBe(notebookCodeDigest(fixture("report.ipynb")));
    (nb.cells[2]!.source as string[]).push("print('changed')\n");
    await writeFile(join(dir, "changed.ipynb"), JSON.stringify(nb));
    expect(notebookCodeDigest(join(dir, "changed.ipynb"))).not.toBe(notebookCodeDigest(fixture("report.ipynb")));
    // report.ipynb's kernelspec is python3; its second cell, the first code cell, is tagged `parameters`.
    expect(notebook("fp", fixture("report.ipynb")).definition).toMatchObject({
      kind: "notebook",
      code: `sha256:${notebookCodeDigest(fixture("report.ipynb"))};kernel=python3;parameters=after code cell 1`,
    });
  });

  it("says how to install papermill into the user's own Python when it is missing, not a script of Cairn's repository", async () => {
    // A folder with a space: the command is quoted, so it runs as shown.
    const venv = join(await tempRoot(), "My Projects", "bare");
    execFileSync("python3", ["-m", "venv", "--without-pip", venv]);
    const python = join(venv, "bin", "python");
    const t = notebook("bare", fixture("report.ipynb"), { python });
    const result = await (await flow("bare").build(() => ({ x: t({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.bare!.error).toMatchObject({
      name: "NotebookDependencyError",
      message: expect.stringContaining(
        `papermill, nbconvert, nbformat are not installed for ${python} (it is the task's \`python\` option). ` +
          `Install them into that Python: \`'${python}' -m pip install papermill nbconvert ipykernel\` ` +
          `(or your project's own tool, e.g. \`uv pip install --python '${python}' papermill nbconvert ipykernel\`)`,
      ),
    });
    expect(result.tasks.bare!.error!.message).not.toContain("setup-python.sh"); // Cairn's own repository's script, not the user's
  });

  it("fails with the failing cell when the notebook raises", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["raise ValueError('no good')\n"] });
    await writeFile(join(dir, "raises.ipynb"), JSON.stringify(nb));
    const t = notebook("raises", join(dir, "raises.ipynb"), { python: VENV_PYTHON });
    const result = await (await flow("raises").build(() => ({ x: t({ data: null }).$out })).run(await runOptions())).wait();
    expect(result.tasks.raises!.error).toMatchObject({ name: "ProcessFailedError", message: expect.stringContaining("ValueError: no good") });
    // Counted as in raises.ipynb (a markdown cell, the parameters, two code cells, this one), not with the injected parameters cell.
    expect(result.tasks.raises!.error?.message).toContain(`Cell 5 of raises.ipynb ("raise ValueError('no good')") raised ValueError: no good (In[5] of the executed notebook)`);
  }, 120_000);

  it("keeps the partial notebook and its HTML, with what the stopped cell printed, when the task times out", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.push({ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ['import time\nprint("printed " + "before the stop", flush=True)\ntime.sleep(120)\n'] });
    await writeFile(join(dir, "slow.ipynb"), JSON.stringify(nb));
    const root = await tempRoot();
    const store = new LocalStore({ root: join(root, "store") });
    // The default grace (5 s) less the kernel's end leaves the rendering about 2 s: a 1 s grace, 0.9 s in all, shows it fits.
    const t = notebook("slow", join(dir, "slow.ipynb"), { python: VENV_PYTHON, killGraceMs: 1000 }).timeout(12_000);
    const result = await (await flow("nb-stopped").build(() => ({ x: t({ data: null }).$out })).run({ tracker: store, root, cache: false })).wait();
    expect(result.tasks.slow!.error).toMatchObject({ name: "TaskTimeoutError" });
    const folder = store.artifactDir(result.tasks.slow!.runId!);
    expect(readFileSync(join(folder, "slow.ipynb"), "utf8")).toContain("printed before the stop");
    const page = readFileSync(join(folder, "slow.html"), "utf8");
    expect(page).toContain("<title>slow</title>");
    expect(page).toContain("printed before the stop");
    expect(readdirSync(folder).filter((f) => f.endsWith(".partial"))).toEqual([]);
  }, 120_000);

  it("says which cell the kernel died in, as the notebook counts it, and how it ended", async () => {
    const dir = await tempRoot();
    const nb = JSON.parse(readFileSync(fixture("report.ipynb"), "utf8")) as { cells: Array<Record<string, unknown>> };
    nb.cells.splice(2, 0, { cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: ["import os; print('dying', flush=True); os._exit(3)\n"] });
    await writeFile(join(dir, "dies.ipynb"), JSON.stringify(nb));
    const t = notebook("dies", join(dir, "dies.ipynb"), { python: VENV_PYTHON });
    const result = await (await flow("dies").build(() => ({ x: t({ data: null }).$out })).run(await runOptions())).wait();
    const message = result.tasks.dies!.error?.message ?? "";
    expect(message).toContain(`The kernel died while running cell 3 of dies.ipynb ("import os; print('dying', flush=True); os._exit(3)") (it exited with code 3): it may have run out of memory or crashed.`);
    // papermill's and asyncio's frames are not the message.
    expect(message).not.toContain("DeadKernelError");
    expect(message).not.toContain("Traceback");
  }, 120_000);
});

describe.skipIf(!hasVenv)("what a notebook's cell starts (the kernel has a session of its own)", () => {
  const flowFile = fixture("spawns.flow.ts");
  const leftovers: number[] = [];
  afterEach(() => {
    for (const pid of leftovers.splice(0)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone, as it should be
      }
    }
  });
  const running = (name: string) => {
    try {
      return execFileSync("pgrep", ["-f", name], { encoding: "utf8" }).trim() !== "";
    } catch {
      return false; // pgrep exits 1 when nothing matches
    }
  };

  /**
   * `cairn run` of spawns.flow.ts; `interrupt`: SIGINT (or the signal named) once the cell said it
   * started its process. `kernel`: the pid of the kernel that ran the cell (the process's parent),
   * read then.
   */
  async function run(env: NodeJS.ProcessEnv, interrupt: boolean | NodeJS.Signals): Promise<{ exit: Exit; name: string; pid: number; kernel: number }> {
    const root = await tempRoot();
    const name = `cairn-nb-orphan-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const pidFile = join(root, "sleep.pid");
    const live = start(process.execPath, [cairnBin, "run", flowFile, "--json", "--root", root], {
      env: childEnv({ ...env, CAIRN_PYTHON: VENV_PYTHON, ORPHAN_NAME: name, PID_FILE: pidFile }),
    });
    let err = "";
    let kernel = 0;
    live.child.stderr!.on("data", (d: Buffer) => {
      err += d;
      if (interrupt && err.includes("[spawn] spawned")) {
        const stat = readFileSync(`/proc/${readFileSync(pidFile, "utf8")}/stat`, "utf8");
        kernel = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        live.child.kill(interrupt === true ? "SIGINT" : interrupt);
        interrupt = false;
      }
    });
    const exit = await live.done;
    const pid = Number(await readFile(pidFile, "utf8").catch(() => "0"));
    if (pid > 0) leftovers.push(pid);
    if (kernel > 0) leftovers.push(kernel);
    return { exit, name, pid, kernel };
  }

  it("ends it when the task times out", async () => {
    const { exit, name, pid } = await run({ NB_TIMEOUT_MS: "15000" }, false);
    expect(exit.stderr).toContain("[spawn] spawned");
    expect(exit.json.find((e) => e.type === "task" && e.status === "failed")?.error).toMatchObject({ name: "TaskTimeoutError" });
    expect(pid).toBeGreaterThan(0);
    expect(await waitFor(() => !running(name), 5000)).toBe(true);
  }, 120_000);

  it("its kernel ends by itself about 1 s after cairn run is killed with -9 (what the cell started is outside the promise)", async () => {
    const { exit, pid, kernel } = await run({}, "SIGKILL");
    expect(exit.signal, exit.stderr).toBe("SIGKILL");
    expect(pid).toBeGreaterThan(0);
    expect(kernel).toBeGreaterThan(1);
    expect(kernel).not.toBe(pid);
    expect(await waitFor(() => !alive(kernel), 5000), `kernel ${kernel} still runs`).toBe(true);
  }, 120_000);

  it("ends it when cairn run gets Ctrl-C", async () => {
    const { exit, name, pid } = await run({}, true);
    expect(exit.code, exit.stderr).toBe(130);
    expect(pid).toBeGreaterThan(0);
    expect(await waitFor(() => !running(name), 5000)).toBe(true);
  }, 120_000);
});
