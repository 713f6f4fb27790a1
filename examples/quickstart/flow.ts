/**
 * Quickstart: predict customer churn from a CSV shipped in this folder.
 *
 *   npx cairn run flow.ts              # run it (embedded store in .cairn/)
 *   npx cairn run flow.ts -p rows=500 -p lr=0.3
 *   npx cairn run flow.ts --json       # the same, as JSON events
 *   npx tsx flow.ts                    # the same through tsx (slower to start)
 *
 * load -> split -> stats x3 (fan-out, one per feature) -> train -> evaluate -> report
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { flow, task, type Artifact } from "cairn-dag";
import { z } from "zod";

const FEATURES = ["tenure_months", "monthly_charges", "support_calls"] as const;
type Row = { features: number[]; monthly: number; churned: number };
type Stat = { column: string; mean: number; std: number };
type Model = { weights: number[]; bias: number };

const readJson = async <T>(a: Artifact): Promise<T> => JSON.parse(await readFile(a.path, "utf8")) as T;

/**
 * Reads the CSV, keeps the first `rows` rows, writes them as JSON. The CSV is declared with
 * `.codeFiles()`: a file read at run time is not in the cache key by itself (its path is, as an
 * input), so without it an edit to the data would be a cache hit with the old rows. `file` is a
 * path from this folder, read against it here: an absolute path as an input would hold where the
 * project is checked out, and every clone at another place would miss.
 */
export const load = task("load")
  .input(z.object({ file: z.string(), rows: z.number().int().positive() }))
  .codeFiles("./data/customers.csv")
  .run(async ({ file, rows }, ctx) => {
    const [header, ...lines] = (await readFile(resolve(import.meta.dirname, file), "utf8")).trim().split("\n");
    const cols = header!.split(",");
    const at = (name: string) => cols.indexOf(name);
    const data: Row[] = lines.slice(0, rows).map((line) => {
      const cells = line.split(",");
      return {
        features: FEATURES.map((f) => Number(cells[at(f)])),
        monthly: cells[at("contract")] === "monthly" ? 1 : 0,
        churned: Number(cells[at("churned")]),
      };
    });
    const churnRate = data.filter((r) => r.churned).length / data.length;
    ctx.log.metric("rows", data.length);
    ctx.logger.info(`read ${data.length} rows, churn rate ${(churnRate * 100).toFixed(1)}%`);
    return { data: await ctx.artifacts.write("customers.json", JSON.stringify(data)), rows: data.length, churnRate };
  });

/** Shuffles with a seed and splits into train and test sets. */
export const split = task("split")
  .input<{ data: Artifact; testFraction: number; seed: number }>()
  .run(async ({ data, testFraction, seed }, ctx) => {
    const rows = await readJson<Row[]>(data);
    let s = seed;
    const random = () => ((s = (s * 1664525 + 1013904223) % 2 ** 32) / 2 ** 32);
    const shuffled = rows.map((r) => [random(), r] as const).sort((a, b) => a[0] - b[0]).map(([, r]) => r);
    const cut = Math.round(shuffled.length * (1 - testFraction));
    return {
      train: await ctx.artifacts.write("train.json", JSON.stringify(shuffled.slice(0, cut))),
      test: await ctx.artifacts.write("test.json", JSON.stringify(shuffled.slice(cut))),
    };
  });

/** Mean and standard deviation of one feature on the training set. */
export const stats = task("stats")
  .input<{ data: Artifact; column: number }>()
  .run(async ({ data, column }): Promise<Stat> => {
    const values = (await readJson<Row[]>(data)).map((r) => r.features[column]!);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length) || 1;
    return { column: FEATURES[column]!, mean, std };
  });

const standardize = (row: Row, st: Stat[]) => [...row.features.map((v, i) => (v - st[i]!.mean) / st[i]!.std), row.monthly];
const predict = (m: Model, x: number[]) => 1 / (1 + Math.exp(-(m.bias + x.reduce((a, v, i) => a + v * m.weights[i]!, 0))));

/** Logistic regression by gradient descent; logs the loss per epoch. */
export const train = task("train")
  .input<{ data: Artifact; stats: Stat[]; lr: number; epochs: number }>()
  .retries(1, { minDelayMs: 200 })
  .run(async ({ data, stats: st, lr, epochs }, ctx) => {
    const rows = await readJson<Row[]>(data);
    const xs = rows.map((r) => standardize(r, st));
    const model: Model = { weights: xs[0]!.map(() => 0), bias: 0 };
    let loss = 0;
    for (let epoch = 0; epoch < epochs; epoch++) {
      ctx.signal.throwIfAborted();
      const grad = model.weights.map(() => 0);
      let gradBias = 0;
      loss = 0;
      xs.forEach((x, i) => {
        const p = predict(model, x);
        const y = rows[i]!.churned;
        loss -= y * Math.log(p + 1e-12) + (1 - y) * Math.log(1 - p + 1e-12);
        x.forEach((v, j) => (grad[j]! += (p - y) * v));
        gradBias += p - y;
      });
      model.weights = model.weights.map((w, j) => w - (lr * grad[j]!) / xs.length);
      model.bias -= (lr * gradBias) / xs.length;
      loss /= xs.length;
      if (epoch % 10 === 0 || epoch === epochs - 1) ctx.log.metric("loss", loss, epoch);
    }
    return { model: await ctx.artifacts.write("model.json", JSON.stringify(model)), loss };
  });

/** Accuracy, precision and recall on the test set. */
export const evaluate = task("evaluate")
  .input<{ model: Artifact; data: Artifact; stats: Stat[] }>()
  .run(async ({ model, data, stats: st }, ctx) => {
    const m = await readJson<Model>(model);
    const rows = await readJson<Row[]>(data);
    let tp = 0, fp = 0, fn = 0, correct = 0;
    for (const r of rows) {
      const yhat = predict(m, standardize(r, st)) >= 0.5 ? 1 : 0;
      if (yhat === r.churned) correct++;
      if (yhat && r.churned) tp++;
      if (yhat && !r.churned) fp++;
      if (!yhat && r.churned) fn++;
    }
    const result = { accuracy: correct / rows.length, precision: tp / (tp + fp || 1), recall: tp / (tp + fn || 1) };
    for (const [k, v] of Object.entries(result)) ctx.log.metric(k, v);
    return result;
  });

/** A short markdown report. */
export const report = task("report")
  .input<{ rows: number; churnRate: number; accuracy: number; precision: number; recall: number; stats: Stat[] }>()
  .run(async (r, ctx) => {
    const text = [
      "# Churn model report",
      "",
      `Rows: ${r.rows}, churn rate ${(r.churnRate * 100).toFixed(1)}%`,
      `Accuracy ${(r.accuracy * 100).toFixed(1)}%, precision ${(r.precision * 100).toFixed(1)}%, recall ${(r.recall * 100).toFixed(1)}%`,
      "",
      "| feature | mean | std |",
      "| --- | --- | --- |",
      ...r.stats.map((s) => `| ${s.column} | ${s.mean.toFixed(2)} | ${s.std.toFixed(2)} |`),
    ].join("\n");
    return { report: await ctx.artifacts.write("report.md", text) };
  });

export default flow("quickstart")
  .params(
    z.object({
      rows: z.number().int().positive().default(1000),
      lr: z.number().positive().default(0.5),
      epochs: z.number().int().positive().default(200),
      testFraction: z.number().gt(0).lt(1).default(0.25),
      seed: z.number().int().default(42),
    }),
  )
  .build(({ params }) => {
    const loaded = load({ file: "data/customers.csv", rows: params.rows });
    const sets = split({ data: loaded.data, testFraction: params.testFraction, seed: params.seed });
    const featureStats = FEATURES.map((_, column) => stats({ data: sets.train, column }).$out);
    const model = train({ data: sets.train, stats: featureStats, lr: params.lr, epochs: params.epochs });
    const scores = evaluate({ model: model.model, data: sets.test, stats: featureStats });
    const written = report({
      rows: loaded.rows,
      churnRate: loaded.churnRate,
      accuracy: scores.accuracy,
      precision: scores.precision,
      recall: scores.recall,
      stats: featureStats,
    });
    return { accuracy: scores.accuracy, loss: model.loss, report: written.report };
  });
