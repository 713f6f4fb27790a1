/**
 * A local model folder is read where the key is made, not where the task is declared: a flow
 * with a large model loads without walking it. Every synchronous read of node:fs is watched (a
 * passthrough), so a walk of the folder at declaration, or a blocking one at key time, shows.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { CacheStore } from "@cairn/cache";
import { LocalStore, TaskCache, type FlowNode, type TaskDefinition } from "@cairn/core";
import { mlflowModel } from "./mlflow-model.ts";

/** The synchronous reads of node:fs, by call: `readdirSync /path`. */
const syncReads = vi.hoisted(() => [] as string[]);

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const watched = (name: "readdirSync" | "readFileSync" | "openSync" | "lstatSync") =>
    ((path: unknown, ...rest: unknown[]) => {
      syncReads.push(`${name} ${String(path)}`);
      return (fs[name] as (...args: unknown[]) => unknown)(path, ...rest);
    }) as never;
  const mocked = { ...fs, readdirSync: watched("readdirSync"), readFileSync: watched("readFileSync"), openSync: watched("openSync"), lstatSync: watched("lstatSync") };
  return { ...mocked, default: mocked };
});

let dir: string;
let model: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-model-decl-"));
  model = join(dir, "model");
  await mkdir(join(model, "weights"), { recursive: true });
  await writeFile(join(model, "MLmodel"), "flavors:\n  python_function: {}\n");
  for (let i = 0; i < 20; i++) await writeFile(join(model, "weights", `part-${i}.bin`), `weights ${i}`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));
beforeEach(() => {
  syncReads.length = 0;
});

/** The key a fresh run's TaskCache makes for `task` (no inputs). */
async function keyOf(task: TaskDefinition) {
  const root = await mkdtemp(join(dir, "root-"));
  const store = await CacheStore.fromUrl(undefined, { root });
  const node: FlowNode = { id: task.name, task, inputs: {}, after: [] };
  return new TaskCache(store, new LocalStore({ root }), "0000000000000000", root, {}).keyFor(node, {});
}

/** The synchronous reads made of the model folder's files and subfolders. */
const readsOfModel = () => syncReads.filter((call) => call.split(" ").slice(1).join(" ").startsWith(`${model}/`) || call.endsWith(` ${model}`));

describe("mlflowModel() of a local folder", () => {
  it("declares without reading the folder: no listing, no file opened", () => {
    const { definition } = mlflowModel("score", model);
    expect(readsOfModel()).toEqual([]);
    expect(definition.code).not.toContain("sha256:");
  });

  it("counts the folder's content where the key is made, without blocking: an edited file is a miss", async () => {
    const { definition } = mlflowModel("score", model);
    const before = await keyOf(definition);
    expect(before.ingredients.codeParts?.resolved).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await keyOf(definition)).toMatchObject({ key: before.key });
    // Read with the asynchronous calls: the event loop runs on while a large model is digested.
    expect(readsOfModel()).toEqual([]);
    await writeFile(join(model, "weights", "part-7.bin"), "retrained");
    const after = await keyOf(definition);
    expect(after.key).not.toBe(before.key);
    // Said as such by explain, not as the generic words of a model alias.
    expect(definition.describeResolved?.(before.ingredients.codeParts!.resolved!, after.ingredients.codeParts!.resolved!)).toMatch(
      /^the files of the local model folder changed \(content sha256:[0-9a-f]{12}… → sha256:[0-9a-f]{12}…\)$/,
    );
  });
});
