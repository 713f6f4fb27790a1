/**
 * The options users pass (run options and their `cache`, a node's `id`, `after` and `if`, `.retries()`,
 * `.cache()`, a map's limits) take an explicit `undefined` under `exactOptionalPropertyTypes`,
 * as the runtime does (it reads undefined as left out): `demo.run({ signal: maybe })` with a
 * `signal` that may be undefined was TS2379. The workspace's tsconfig does not set that option,
 * so tsc checks a user's snippet with it here, against Cairn's sources. The process kinds'
 * options too: \`script("x", { file, cwd: maybeDir })\` with a \`maybeDir\` that may be undefined was TS2379.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { start } from "./cache/helpers.ts";

const repo = resolve(import.meta.dirname, "..");

const SNIPPET = `import { flow, map, mlflowModel, mlflowProject, notebook, script, shell, task } from "cairn-dag";
declare const maybe: AbortSignal | undefined;
declare const conc: number | undefined;
declare const name: string | undefined;
declare const flag: boolean | undefined;
declare const env: Record<string, string> | undefined;
declare const list: string[] | undefined;
const double = task("double")
  .input<{ x: number }>()
  .retries(2, { minDelayMs: conc, maxDelayMs: undefined })
  .cache({ ttl: name, key: name })
  .run(async ({ x }) => ({ y: x * 2 }));
const gate = task("gate").run(async () => ({ ok: true }));
const demo = flow("demo").build(() => {
  const one = double({ x: 1 }, { id: name, after: undefined });
  const maybeIf = name === undefined ? undefined : gate().ok;
  double({ x: 2 }, { id: "two", if: maybeIf });
  const many = map(double, { over: [1, 2], as: "x", concurrency: conc, minSuccess: undefined, id: name });
  return { y: one.y, n: many.outputs };
});
// The kinds' options, set from variables that may be undefined (\`cwd: maybeDir\`).
const common = { env, secrets: list, cwd: name, killGraceMs: conc };
script("train", { file: "train.py", interpreter: name, args: list, preload: list, ...common });
shell("count", "wc -l", { shell: name, ...common });
notebook("report", "report.ipynb", { kernel: name, python: name, html: flag, ...common });
mlflowProject("project", { uri: "./project", entryPoint: name, python: name, mode: undefined, cli: flag, ...common });
mlflowModel("model", "models:/m/1", { mode: undefined, format: undefined, python: name, registryUri: name, startTimeoutMs: conc, ...common });
export async function go(): Promise<void> {
  await demo.run({ signal: maybe, concurrency: conc, experiment: name, root: name, tracker: undefined, params: undefined, pools: undefined, env: undefined });
  await demo.run({ cache: { url: name, refresh: undefined, rerun: undefined, strict: undefined, store: undefined } });
  await demo.run({ cache: undefined, secrets: undefined, interceptors: undefined, source: name, beforeEnd: undefined, queue: name, failurePolicy: undefined });
  // @ts-expect-error A wrong type is still refused: the snippet is checked.
  await demo.run({ concurrency: "4" });
  // @ts-expect-error As is a kind's option of the wrong type.
  shell("bad", "true", { cwd: 4 });
}
`;

it("run, node, retry, cache, map and process kind options take an explicit undefined under exactOptionalPropertyTypes", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-exact-"));
  try {
    await writeFile(join(dir, "snippet.ts"), SNIPPET);
    const compilerOptions = {
      target: "ES2023",
      lib: ["ES2023"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      allowImportingTsExtensions: true,
      skipLibCheck: true,
      types: ["node"],
      typeRoots: [join(repo, "node_modules/@types")],
      paths: { "cairn-dag": [join(repo, "packages/cairn/src/index.ts")] },
    };
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files: ["snippet.ts"] }));
    const tsc = await start(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], { cwd: dir }).done;
    // Cairn's own sources are not written for this option; only the user's lines count.
    const errors = tsc.stdout.split("\n").filter((line) => line.startsWith("snippet.ts"));
    expect(errors).toEqual([]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 240_000);
