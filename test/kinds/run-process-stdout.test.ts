/**
 * `runProcess({ captureStdout: true })`, the public way a custom kind reads its process's stdout
 * (README's `sqlFile` parsing `sqlite3 -json`): the stdout is returned whether or not the process
 * also writes $CAIRN_OUTPUTS; past 64 MB the task fails with words a kind's author can act on; and
 * a temp folder that is full fails it naming ENOSPC, where, and how to fix it.
 */
import { openSync } from "node:fs";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { flow } from "@cairn/dsl";
import { configDigest, kindTask, NO_RETRY } from "@cairn/dsl/kind";
import { runProcess } from "../../packages/process/src/spawn/index.ts";
import { StdoutOutput } from "../../packages/process/src/spawn/stdout-output.ts";
import { runOptions } from "./helpers.ts";

/** A kind task running `sh -c line` through runProcess with captureStdout, returning what it got. */
function captured(name: string, line: string) {
  return kindTask<Record<string, never>, { stdout: string | null; outputs: unknown }>({
    definition: {
      name,
      kind: "captured",
      code: configDigest({ line }),
      retry: NO_RETRY,
      cache: {},
      env: [],
      run: async (inputs, ctx) => {
        const r = await runProcess({ command: "sh", args: ["-c", line], inputs, captureStdout: true }, ctx);
        return { stdout: r.stdout ?? null, outputs: r.outputs ?? null };
      },
    },
  });
}

describe("runProcess with captureStdout: true", () => {
  it("returns the stdout also when the process writes $CAIRN_OUTPUTS", async () => {
    const t = captured("both", `printf '[{"id": 1}]\\n'; echo '{"rows": 1}' > "$CAIRN_OUTPUTS"`);
    const run = await flow("both").build(() => ({ r: t() })).run({ ...(await runOptions()), cache: false });
    expect(await run.outputs()).toEqual({ r: { stdout: '[{"id": 1}]', outputs: { rows: 1 } } });
  });

  it("fails a stdout over 64 MB with words for the kind's author: the size, the limit, runProcess, and to write the data to a file", async () => {
    const t = captured("dump", `yes ${"y".repeat(99)} | head -c 70000000`);
    const result = await (await flow("dump").build(() => ({ r: t() })).run({ ...(await runOptions()), cache: false })).wait();
    const task = result.tasks.dump!;
    expect(task.status).toBe("failed");
    expect(task.error?.name).toBe("ProcessOutputError");
    const message = task.error?.message ?? "";
    expect(message).toMatch(/runProcess with captureStdout\), which may be at most 64 MB, and it printed 66\.8 MB/);
    expect(message).toContain("logs/stdout.txt");
    expect(message).toMatch(/write large data to a file instead of stdout/);
    // Not the shell task's words, which a kind cannot act on.
    expect(message).not.toMatch(/shell task|wrote no \$CAIRN_OUTPUTS/);
  }, 60_000);
});

describe("the copy of a process's stdout", () => {
  it("on a full temp folder, fails naming ENOSPC, the folder and TMPDIR, and how to fix it", async () => {
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    const full = openSync("/dev/full", "r+");
    const copy = new StdoutOutput(full, "/tmp/cairn-task-abc", "shell output");
    copy.write("a line with a secret\n");
    await new Promise((r) => setTimeout(r, 50));
    copy.write("another line\n");
    await copy.close();
    const error = await copy.read("sql").catch((e: Error) => e);
    await copy.release();
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/^Task "sql" wrote outputs Cairn cannot use: it wrote no \$CAIRN_OUTPUTS, so its stdout is its `stdout` output, but Cairn could not keep its copy, a file in \/tmp\/cairn-task-abc \(ENOSPC: no space left on device, write\): the temp folder is full\./);
    expect(message).toContain(`up to 64 MB of the temp folder while the process runs (TMPDIR is ${tmpdir()})`);
    expect(message).toMatch(/point TMPDIR at a folder with room \(`TMPDIR=\/var\/tmp cairn run \.\.\.`\), or write the outputs as JSON to \$CAIRN_OUTPUTS\.$/);
    expect(message).not.toContain("secret");
  });
});
