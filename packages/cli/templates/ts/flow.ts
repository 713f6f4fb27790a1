/**
 * A Cairn flow of TypeScript tasks: make data -> fit a line -> write a report.
 *
 *   npx cairn run flow.ts                 # run it; runs are recorded in .cairn/
 *   npx cairn run flow.ts                 # again: every task comes from the cache
 *   npx cairn run flow.ts -p rows=500     # only what depends on `rows` runs again
 *   npx cairn plan flow.ts -p seed=2      # what would run, and why, without running
 *
 * Set MLFLOW_TRACKING_URI=http://127.0.0.1:5000 to record into an MLflow server instead.
 */
import { readFile } from "node:fs/promises";
import { flow, task, type Artifact } from "cairn-dag";
import { z } from "zod";

type Point = { x: number; y: number };

/** Makes `rows` noisy points around y = 3x + 1 (seeded, so the same inputs give the same bytes). */
const makeData = task("make-data")
  .input(z.object({ rows: z.number().int().positive(), seed: z.number().int() }))
  .run(async ({ rows, seed }, ctx) => {
    let s = seed;
    const random = () => (s = (s * 1664525 + 1013904223) % 2 ** 32) / 2 ** 32;
    const points: Point[] = Array.from({ length: rows }, (_, i) => {
      const x = i / rows;
      return { x, y: 3 * x + 1 + (random() - 0.5) * 0.4 };
    });
    ctx.log.metric("rows", rows);
    return { data: await ctx.artifacts.write("points.json", JSON.stringify(points)) };
  });

/** Least-squares fit of a line to the points. */
const fit = task("fit")
  .input<{ data: Artifact }>()
  .run(async ({ data }, ctx) => {
    const points = JSON.parse(await readFile(data.path, "utf8")) as Point[];
    const n = points.length;
    const mx = points.reduce((a, p) => a + p.x, 0) / n;
    const my = points.reduce((a, p) => a + p.y, 0) / n;
    const sxy = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
    const sxx = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
    const slope = sxy / sxx;
    const intercept = my - slope * mx;
    const rmse = Math.sqrt(points.reduce((a, p) => a + (p.y - (slope * p.x + intercept)) ** 2, 0) / n);
    ctx.log.metric("rmse", rmse);
    return { slope, intercept, rmse };
  });

/** A short markdown report, kept as an artifact of the run. */
const report = task("report")
  .input<{ slope: number; intercept: number; rmse: number }>()
  .run(async ({ slope, intercept, rmse }, ctx) => ({
    report: await ctx.artifacts.write("report.md", `# Fit\n\ny = ${slope.toFixed(3)} x + ${intercept.toFixed(3)}, rmse ${rmse.toFixed(4)}\n`),
  }));

export default flow("my-flow")
  .params(z.object({ rows: z.number().int().positive().default(200), seed: z.number().int().default(1) }))
  .build(({ params }) => {
    const data = makeData({ rows: params.rows, seed: params.seed });
    const line = fit({ data: data.data });
    const doc = report({ slope: line.slope, intercept: line.intercept, rmse: line.rmse });
    return { slope: line.slope, rmse: line.rmse, report: doc.report };
  });
