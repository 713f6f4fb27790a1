/**
 * A path input that holds where the project is checked out (`fileURLToPath(new URL(...,
 * import.meta.url))`) misses in every clone at another place: `cairn explain` and the miss reason
 * a run records say that it is the checkout path and how to fix it, not only that it changed.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, jsonLines, start } from "../cache/helpers.ts";
import { repo } from "./helpers.ts";

const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const FLOW = `import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { flow, task } from "cairn-dag";

const load = task("load")
  .input<{ file: string }>()
  .run(async ({ file }) => ({ n: (await readFile(file, "utf8")).length }));

export default flow("checkout-path").build(() => ({ n: load({ file: fileURLToPath(new URL("data/in.txt", import.meta.url)) }).n }));
`;

const cairnIn = (cwd: string, args: string[]) => start(process.execPath, [cairnBin, ...args], { cwd, env: childEnv() }).done;

describe("a path input that differs only in where the project is checked out", () => {
  it("is said as the checkout path, with how to fix it, by explain and by the miss reason the run records", async () => {
    // Inside the workspace, where a flow file resolves cairn-dag; one store for both copies.
    const base = await mkdtemp(join(repo, "test", ".x-checkout-path-"));
    made.push(base);
    const alice = join(base, "alice", "proj");
    await mkdir(join(alice, "data"), { recursive: true });
    await writeFile(join(alice, "flow.ts"), FLOW);
    await writeFile(join(alice, "data", "in.txt"), "rows\n");
    const bob = join(base, "bob", "work", "proj");
    await cp(alice, bob, { recursive: true });
    const root = join(base, "store");

    const first = await cairnIn(alice, ["run", "flow.ts", "--root", root]);
    expect(first.code, first.stderr).toBe(0);
    const explain = await cairnIn(bob, ["explain", "flow.ts", "load", "--root", root]);
    expect(explain.code, explain.stderr).toBe(0);
    const note = `input \`file\` changed only in the folder before \`data/in.txt\`, where the project is checked out (now ${bob}): each checkout at another place misses. Pass a path relative to the project instead`;
    expect(explain.stdout).toContain(`${note} (\`data/in.txt\`, from the project's root, resolved in the task). It changed from `);

    const second = await cairnIn(bob, ["run", "flow.ts", "--root", root, "--json"]);
    expect(second.code, second.stderr).toBe(0);
    const load = jsonLines(second.stdout).find((e) => e.type === "task" && e.task === "load" && e.status === "succeeded") as { taskRunId: string };
    const shown = await cairnIn(bob, ["show", load.taskRunId, "--root", root, "--json"]);
    const tags = (JSON.parse(shown.stdout) as { run: { tags: Record<string, string> } }).run.tags;
    expect(tags["cairn.miss_reason"]).toContain(note);
  }, 60_000);
});
