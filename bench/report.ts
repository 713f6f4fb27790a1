/**
 * `pnpm bench:report`: the HTML report of flows of 100 and 1,000 no-op tasks (ten layers, a task
 * name each, each task taking two outputs of the layer before; embedded store, cache on, every
 * task run): what writing it adds to the end of a run (the `beforeEnd` hook `cairn run` passes: the
 * report module's first load, reading the record, layout, HTML, file), each N in a fresh process
 * running Cairn's bundle as `cairn` does, for the first run of the flow's shape (its graph laid
 * out) and the median of 5 later ones (the layout kept); the file's size; and how long headless
 * Chromium takes to load and paint it (median of 5).
 *
 *   pnpm bench:report
 *   tsx bench/report.ts run 100    # one N in this process; prints JSON
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
// @ts-expect-error: a JavaScript module without types
import { ensureBundle } from "../packages/cli/bin/bundle.mjs";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [mode, arg] = process.argv.slice(2);

if (mode === "run") {
  const { files } = (await ensureBundle()) as { files: Record<string, string> };
  const { flow, task } = (await import(files.cairn!)) as typeof import("cairn-dag");
  const n = Number(arg);
  const width = Math.max(1, Math.round(n / 10));
  // One task name per layer: above 300 tasks the graph draws one node per name.
  const steps = Array.from({ length: 10 }, (_, layer) =>
    task(`step-${layer}`)
      .input<{ i: number; deps: unknown[] }>()
      .run(async ({ i }) => ({ i })),
  );
  const f = flow(`report-bench-${n}`).build(() => {
    const nodes: Array<{ i: unknown }> = [];
    for (let i = 0; i < n; i++) {
      const layer = Math.floor(i / width);
      const deps = layer === 0 ? [] : [nodes[i - width]!.i, nodes[(layer - 1) * width + ((i * 7) % width)]!.i];
      nodes.push(steps[Math.min(layer, 9)]!({ i, deps }));
    }
    return {};
  });
  rmSync(join(tmpdir(), `cairn-${userInfo().uid}`, "report-layouts"), { recursive: true, force: true });
  const root = mkdtempSync(join(tmpdir(), "cairn-bench-report-"));
  try {
    const hooks: number[] = [];
    let path = "";
    for (let i = 0; i < 6; i++) {
      const run = await f.run({
        root,
        env: {},
        cache: { refresh: true },
        beforeEnd: async (ending) => {
          const t = performance.now();
          const { logReport } = (await import(files.report!)) as typeof import("@cairn/report");
          path = (await logReport(ending)).localPath!;
          hooks.push(performance.now() - t);
        },
      });
      await run.wait();
    }
    const copy = join(tmpdir(), `cairn-bench-report-${n}-${process.pid}.html`);
    copyFileSync(path, copy);
    const round = (x: number) => Math.round(x * 10) / 10;
    console.log(JSON.stringify({ tasks: n, firstMs: round(hooks[0]!), laterMs: round(median(hooks.slice(1))), bytes: statSync(copy).size, file: copy }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
} else {
  const { launchChromium } = await import("../packages/report/test/chromium.ts");
  const tsx = join(import.meta.dirname, "..", "node_modules", ".bin", "tsx");
  const browser = await launchChromium();
  const rows: string[] = [];
  try {
    for (const n of [100, 1000]) {
      const out = execFileSync(tsx, [import.meta.filename, "run", String(n)], { encoding: "utf8", env: { ...process.env, MLFLOW_TRACKING_URI: "" } });
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as { firstMs: number; laterMs: number; bytes: number; file: string };
      const loads: number[] = [];
      for (let i = 0; i < 5; i++) {
        const page = await browser.context.newPage();
        const t = performance.now();
        await page.goto(pathToFileURL(r.file).href, { waitUntil: "load" });
        // One frame after load: laid out and painted.
        await page.evaluate("new Promise((done) => requestAnimationFrame(() => done(null)))");
        loads.push(performance.now() - t);
        await page.close();
      }
      rmSync(r.file, { force: true });
      rows.push(`| ${n} tasks | ${r.laterMs} ms (first run of the flow's shape: ${r.firstMs} ms) | ${(r.bytes / 1024).toFixed(0)} KB | ${median(loads).toFixed(0)} ms |`);
    }
  } finally {
    await browser.close();
  }
  console.log("| flow | writing the report at a run's end | size | Chromium load + first paint (median of 5) |\n| --- | --- | --- | --- |");
  for (const row of rows) console.log(row);
}
