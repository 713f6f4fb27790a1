/**
 * Regenerates docs/report.png, the README's picture of a report: runs the quickstart twice with
 * `cairn run` in a scratch folder (the second time with another learning rate, so that the data
 * tasks come from the cache and the model's tasks say why they ran), then screenshots the second
 * run's cairn/report.html in headless Chromium (scripts/setup-chromium.sh installs it).
 *
 *   pnpm report:screenshot
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { launchChromium } from "../packages/report/test/chromium.ts";

const repo = resolve(import.meta.dirname, "..");
const cairn = join(repo, "packages/cli/bin/cairn.mjs");
const scratch = mkdtempSync(join(tmpdir(), "cairn-report-shot-"));
const out = join(repo, "docs/report.png");
try {
  const run = (...args: string[]) =>
    execFileSync(process.execPath, [cairn, "run", "flow.ts", "--root", join(scratch, ".cairn"), ...args], {
      cwd: join(repo, "examples/quickstart"),
      env: { ...process.env, NO_COLOR: "1", MLFLOW_TRACKING_URI: "" },
      encoding: "utf8",
    });
  run();
  const report = /^Report: (.+)$/m.exec(run("-p", "lr=0.3"))?.[1];
  if (!report) throw new Error("cairn run printed no Report: line");
  const browser = await launchChromium({ javaScriptEnabled: false });
  try {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1240, height: 900 });
    await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
    // The whole page but the per-task sections' tail: header, graph, timeline, table, the first reasons.
    await page.screenshot({ path: out, fullPage: true, clip: { x: 0, y: 0, width: 1240, height: 1380 } });
  } finally {
    await browser.close();
  }
  console.log(`wrote ${out}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
