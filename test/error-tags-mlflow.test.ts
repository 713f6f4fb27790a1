/**
 * Long error tags as MLflow's users read them, from a real server with MLflow's own MlflowClient:
 * a task's error and a flow run's cancel reason are cut between two code points (never half an
 * emoji, which MLflow shows as U+FFFD) and at a word's end, and say how long the whole text was and,
 * when a file holds it (a failed task's `cairn/error.txt`), where it is.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, task } from "cairn-dag";
import { MLFLOW_LIMITS } from "@cairn/mlflow/tracker";
import { TAG_VALUE_LIMIT } from "../packages/core/src/pipeline/task-run.ts";
import { readWithMlflow } from "../packages/mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

let server: MlflowServer;
let root: string;
beforeAll(async () => {
  server = await startMlflowServer();
  root = await mkdtemp(join(tmpdir(), "cairn-error-tags-"));
}, 120_000);
afterAll(async () => {
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** A flow of one task that throws `message`, run against the server; the failed task's run as MlflowClient reads it, and its error file. */
async function failedRun(name: string, message: string) {
  const boom = task(`${name}-task`).run((): { ok: boolean } => {
    throw new Error(message);
  });
  const f = flow(name).build(() => ({ ok: boom().ok }));
  const result = await (await f.run({ root, cache: false, env: { MLFLOW_TRACKING_URI: server.uri } })).wait();
  expect(result.status).toBe("failed");
  const runId = result.tasks[`${name}-task`]!.runId!;
  const [run, file] = await readWithMlflow(server.uri, [
    { op: "get_run", run_id: runId },
    { op: "download_artifact", run_id: runId, path: "cairn/error.txt", dst: await mkdtemp(join(root, "dl-")) },
  ]);
  return { tags: run.tags as Record<string, string>, errorFile: Buffer.from(file.base64, "base64").toString("utf8") };
}

/** `tag` as `head` and its note, checked: at most `limit` code points, no lone surrogate (stored as U+FFFD), `head` a beginning of `whole`. */
function cut(tag: string, whole: string, limit: number, where?: string): string {
  expect([...tag].length).toBeLessThanOrEqual(limit);
  expect(tag).not.toContain("\uFFFD");
  const note = `... [${[...whole].length} characters${where ? `; the whole text is in ${where}` : ""}]`;
  expect(tag.endsWith(note), tag.slice(-200)).toBe(true);
  const head = tag.slice(0, -note.length);
  expect(whole.startsWith(head)).toBe(true);
  // Most of the tag is kept: the cut is near its limit, not at the first space.
  expect(tag.length).toBeGreaterThan(limit - 100);
  return head;
}

describe("long error tags in MLflow", () => {
  it("core cuts tags at MLflow's own limit of a tag value", () => {
    expect(TAG_VALUE_LIMIT).toBe(MLFLOW_LIMITS.tagValueLength);
  });

  it("an error of 2,500 words: each error tag ends at a whole word and names cairn/error.txt, which holds it whole", async () => {
    const message = Array.from({ length: 2500 }, (_, i) => `word${i}`).join(" ");
    const { tags, errorFile } = await failedRun("long-words", message);
    for (const [key, whole, limit] of [
      ["cairn.error", `Error: ${message}`, 4000],
      ["cairn.error.message", message, 8000],
    ] as const) {
      const head = cut(tags[key]!, whole, limit, "artifact cairn/error.txt");
      // A whole word: what follows the kept beginning in the whole text is a space.
      expect(whole.charAt(head.length), key).toBe(" ");
    }
    expect(errorFile.startsWith(`Error: ${message}\n`)).toBe(true);
  }, 120_000);

  it("an emoji-heavy error: each error tag is cut between two code points, never half an emoji", async () => {
    // "Error: x" then emoji, no space: a cut at an odd number of UTF-16 units falls inside a pair.
    const message = `x${"😀".repeat(5000)}`;
    const { tags } = await failedRun("long-emoji", message);
    cut(tags["cairn.error"]!, `Error: ${message}`, 4000, "artifact cairn/error.txt");
    cut(tags["cairn.error.message"]!, message, 8000, "artifact cairn/error.txt");
  }, 120_000);

  it("a flow run's long cancel reason is cut the same way, with its length (no file holds it)", async () => {
    const wait = task("waits").run(
      (_, ctx) =>
        new Promise<{ ok: boolean }>((_r, j) => {
          ctx.signal.addEventListener("abort", () => j(ctx.signal.reason));
        }),
    );
    const f = flow("long-cancel").build(() => ({ ok: wait().ok }));
    const reason = `stop ${"🛑".repeat(3000)}`;
    const run = await f.run({ root, cache: false, env: { MLFLOW_TRACKING_URI: server.uri } });
    run.on((e) => {
      if (e.type === "task" && e.status === "running") run.cancel(reason);
    });
    const result = await run.wait();
    expect(result.status).toBe("cancelled");
    const [flowRun] = await readWithMlflow(server.uri, [{ op: "get_run", run_id: result.runId }]);
    cut(flowRun.tags["cairn.cancel_reason"], reason, 4000);
  }, 120_000);
});
