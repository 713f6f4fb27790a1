/**
 * A kind written in the project whose own code fails, as the user reads it: `inputFiles` that
 * throws (a file that is not there) leaves `cairn plan` and `cairn explain` whole, that task
 * planned to run with the reason; a plain error thrown by the kind's run function names the line
 * of the kind's code that raised it, as a function task's does; and explain names the kind of a
 * task whose `code` changed, for a kind installed as a package too. Real `cairn` processes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start } from "../cache/helpers.ts";

let dir: string;

beforeAll(async () => {
  // Inside the workspace, so that `cairn-dag` resolves as it does for the examples.
  dir = await mkdtemp(join(repo, "test", ".kind-errors-"));
  await mkdir(join(dir, "kinds"), { recursive: true });
  await writeFile(
    join(dir, "kinds", "digest.ts"),
    [
      `import { checkName, fileDigest, kindTask, NO_RETRY, type KindTask } from "cairn-dag/kind";`,
      ``,
      `export function digest(name: string): KindTask<{ data: string }, { ok: boolean }> {`,
      `  checkName(name);`,
      `  return kindTask({`,
      `    definition: { name, kind: "digest", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: () => ({ ok: true }),`,
      `      inputFiles: async (i) => ({ data: await fileDigest(String(i.data)) }) },`,
      `  });`,
      `}`,
      ``,
      `export function plain(name: string): KindTask<Record<string, never>, { ok: boolean }> {`,
      `  checkName(name);`,
      `  return kindTask({`,
      `    definition: { name, kind: "plain", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: () => {`,
      `      throw new Error("plain failure from kind");`,
      `    } },`,
      `  });`,
      `}`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "missing.flow.ts"),
    [
      `import { flow, task } from "cairn-dag";`,
      `import { digest } from "./kinds/digest.ts";`,
      `const d = digest("d");`,
      `const other = task("other").run(() => ({ n: 1 }));`,
      `export default flow("missing").build(() => ({ ok: d({ data: "nope.csv" }).ok, n: other().n }));`,
    ].join("\n"),
  );
  // Refuses a data path with an error that says it is not retried, or throws a bare string.
  await writeFile(
    join(dir, "kinds", "refusing.ts"),
    [
      `import { NonRetryableError } from "cairn-dag";`,
      `import { checkName, fileDigest, kindTask, NO_RETRY, type KindTask } from "cairn-dag/kind";`,
      ``,
      `export function refusing(name: string): KindTask<{ data: string }, { ok: boolean }> {`,
      `  checkName(name);`,
      `  return kindTask({`,
      `    definition: { name, kind: "refusing", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: () => ({ ok: true }),`,
      `      inputFiles: async (i) => {`,
      `        if (i.data === "bad") throw new NonRetryableError("bad data path (token tok-s3cr3t-9f8e7d)");`,
      `        if (i.data === "text") throw "a bare string from inputFiles";`,
      `        return { data: await fileDigest(String(i.data)) };`,
      `      } },`,
      `  });`,
      `}`,
    ].join("\n"),
  );
  await writeFile(join(dir, "good.csv"), "a\n1\n");
  await writeFile(
    join(dir, "refusing.flow.ts"),
    [
      `import { flow, map, task } from "cairn-dag";`,
      `import { refusing } from "./kinds/refusing.ts";`,
      `const d = refusing("d");`,
      `const t = refusing("t");`,
      `const m = refusing("m");`,
      `const down = task("down").input<{ ok: boolean }>().run(async ({ ok }) => ({ n: ok ? 1 : 0 }));`,
      `const last = task("last").input<{ n: number }>().run(async ({ n }) => ({ n: n + 1 }));`,
      `const after = task("after").input<{ oks: unknown[] }>().run(async ({ oks }) => ({ n: oks.length }));`,
      `export default flow("refusing").build(() => {`,
      `  const items = map(m, { over: ["good.csv", "bad"], as: "data" });`,
      `  return { n: last({ n: down({ ok: d({ data: "bad" }).ok }).n }).n, t: t({ data: "text" }).ok, after: after({ oks: items.outputs }).n };`,
      `});`,
    ].join("\n"),
  );
  await writeFile(join(dir, "secrets.env"), "TOKEN=tok-s3cr3t-9f8e7d\n");
  await writeFile(
    join(dir, "plain.flow.ts"),
    [`import { flow } from "cairn-dag";`, `import { plain } from "./kinds/digest.ts";`, `const p = plain("plain");`, `export default flow("plain").build(() => ({ ok: p().ok }));`].join("\n"),
  );
  // A kind installed as a package: its code is not the project's, so its key holds only its `code`.
  await mkdir(join(dir, "node_modules", "my-sql-kind"), { recursive: true });
  await writeFile(join(dir, "node_modules", "my-sql-kind", "package.json"), JSON.stringify({ name: "my-sql-kind", version: "1.0.0", type: "module", exports: { ".": "./index.js" } }));
  await writeFile(
    join(dir, "node_modules", "my-sql-kind", "index.js"),
    [
      `import { checkName, configDigest, kindTask, NO_RETRY } from "cairn-dag/kind";`,
      `export function sql(name, options) {`,
      `  checkName(name);`,
      `  return kindTask({ definition: { name, kind: "sql", retry: NO_RETRY, cache: {}, env: [], code: configDigest({ query: options.query }), run: async () => ({ rows: [options.query] }) } });`,
      `}`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "sql.flow.ts"),
    [`import { flow } from "cairn-dag";`, `import { sql } from "my-sql-kind";`, `const q = sql("q", { query: "select 1" });`, `export default flow("sql").build(() => ({ rows: q({}).rows }));`].join("\n"),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cairn = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", join(dir, ".cairn")], { cwd: dir, env: childEnv({ CAIRN_NO_AUTORUN: "0" }) }).done;
// Node loads a package's modules itself, and this workspace's cairn-dag is TypeScript: tsx lets it
// (a published cairn-dag is JavaScript).
const cairnTsx = (...args: string[]) => start(process.execPath, ["--import", "tsx", cairnBin, ...args, "--root", join(dir, ".cairn")], { cwd: dir, env: childEnv({ CAIRN_NO_AUTORUN: "0" }) }).done;

describe("a project kind whose inputFiles throws", () => {
  it("is planned to run, the reason naming the task and the error; the rest of the plan stands", async () => {
    const plan = await cairn("plan", "missing.flow.ts", "--no-tracking");
    expect(plan.stderr).not.toContain("ENOENT");
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^d\s+runs\s+its key cannot be made before running: ENOENT.*'nope\.csv'$/m);
    expect(plan.stdout).toMatch(/^other\s+runs\s+no cache entry/m);

    // explain refuses a --root that is not there (a typo would explain every task as never run): the state folder a run makes.
    await mkdir(join(dir, ".cairn"), { recursive: true });
    const explain = await cairn("explain", "missing.flow.ts", "d", "--no-tracking");
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout, explain.stdout).toMatch(/its key cannot be made before running: ENOENT.*'nope\.csv'/);
  });
});

describe("a project kind whose inputFiles throws an error that is not retried", () => {
  it("is planned to fail before it starts, and what depends on it not to start, as the run does; the reason masked", async () => {
    const run = await cairn("run", "refusing.flow.ts", "--no-tracking", "--json", "--failure-policy", "continue");
    expect(run.code).toBe(1);
    const ended = new Map<string, string>();
    for (const line of run.stdout.split("\n").filter(Boolean)) {
      const event = JSON.parse(line) as { type?: string; task?: string; status?: string };
      if (event.type === "task" && event.task && !["queued", "running"].includes(event.status!)) ended.set(event.task, event.status!);
    }
    expect(Object.fromEntries(ended)).toMatchObject({ d: "failed", down: "skipped", last: "skipped", t: "succeeded", "m[1]": "failed", m: "failed", after: "skipped" });

    const plan = await cairn("plan", "refusing.flow.ts", "--no-tracking", "--secrets", "secrets.env");
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout + plan.stderr).not.toContain("tok-s3cr3t-9f8e7d");
    expect(plan.stdout).toMatch(/^d\s+runs\s+fails before it starts: its key cannot be made \(NonRetryableError: bad data path \(token \*\*\*\)\), an error that is not retried$/m);
    expect(plan.stdout).toMatch(/^down\s+skipped\s+not started: upstream task "d" fails$/m);
    expect(plan.stdout).toMatch(/^last\s+skipped\s+not started: upstream task "down" fails$/m);
    // A bare string thrown is the message itself, not "undefined"; it may be retried, so the run runs the task uncached.
    expect(plan.stdout).toMatch(/^t\s+runs\s+its key cannot be made before running: a bare string from inputFiles$/m);
    expect(plan.stdout).toMatch(/^m\[1\]\s+runs\s+fails before it starts: its key cannot be made \(NonRetryableError: bad data path \(token \*\*\*\)\)/m);
    expect(plan.stdout).toMatch(/^after\s+skipped\s+not started: upstream task "m" fails$/m);
    expect(plan.stdout).not.toContain("undefined");
  });
});

describe("a plain error thrown by a project kind's run function", () => {
  it("names the line of the kind's code that raised it", async () => {
    const r = await cairn("run", "plain.flow.ts", "--no-tracking");
    expect(r.code).toBe(1);
    // digest.ts line 15: `      throw new Error(...)`; V8 points at `new`.
    expect(r.stdout).toContain("plain failure from kind\n    at kinds/digest.ts:15:13");
  });
});

describe("a kind installed as a package", () => {
  it("explain names the task and its kind when its `code` changed, as for a kind written in the project", async () => {
    const first = await cairnTsx("run", "sql.flow.ts", "--no-tracking");
    expect(first.code, first.stderr).toBe(0);
    const flowFile = join(dir, "sql.flow.ts");
    await writeFile(flowFile, (await readFile(flowFile, "utf8")).replace("select 1", "select 2"));
    const explain = await cairnTsx("explain", "sql.flow.ts", "q", "--no-tracking");
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout).toContain("the `code` of task `q` (kind `sql`) changed: what its definition's `code` holds (its options, config or version)");
  });
});
