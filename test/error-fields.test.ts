/**
 * What a failed function task's record keeps of what it threw, and never the credentials such a
 * value carries, also when the task read them from the environment itself and they were never
 * declared as secrets. Read back from the embedded store's `cairn/error.txt` and from the flow's
 * result (what the terminal and the tags show).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalStore } from "@cairn/core";
import { flow, task, type FlowResult } from "cairn-dag";

const ENV_TOKEN = "ENV_TOKEN_xyz-never-declared";

const dirs: string[] = [];
const tmp = async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-error-fields-"));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Runs `f` in the embedded store and gives its result and each failed task's `cairn/error.txt`. */
async function runAndRead(
  f: { run(options: object): Promise<any> },
): Promise<{ result: FlowResult<unknown>; errorTxt: Record<string, string>; tags: Record<string, Record<string, string>> }> {
  const root = await tmp();
  const result = (await (await f.run({ root, cache: false, env: {}, failurePolicy: "continue" })).wait()) as FlowResult<unknown>;
  const store = new LocalStore({ root });
  const errorTxt: Record<string, string> = {};
  const tags: Record<string, Record<string, string>> = {};
  for (const [id, r] of Object.entries(result.tasks)) {
    if (r.status !== "failed" || !r.runId) continue;
    errorTxt[id] = await readFile(await store.downloadArtifact(r.runId, "cairn/error.txt", await tmp()), "utf8");
    tags[id] = (await store.getRun(r.runId))!.tags;
  }
  return { result, errorTxt, tags };
}

describe("a thrown plain object", () => {
  it("shows its credentials by key name as *** in its message (terminal, tags, MLflow), also a token read from the environment", async () => {
    const thrower = task("thrower").run(() => {
      throw { status: 401, config: { headers: { Authorization: `Bearer ${ENV_TOKEN}`, Accept: "application/json" } } };
    });
    const { result, errorTxt, tags } = await runAndRead(flow("thrown-object").build(() => (thrower(), {})));
    const message = result.tasks.thrower!.error!.message;
    expect(message).toContain("{ status: 401, config: { headers: { Authorization: '***', Accept: 'application/json' } } }");
    expect(tags.thrower!["cairn.error.message"]).toBe(message);
    expect(JSON.stringify(result)).not.toContain(ENV_TOKEN);
    expect(JSON.stringify(tags)).not.toContain(ENV_TOKEN);
    expect(errorTxt.thrower).not.toContain(ENV_TOKEN);
  });
});
