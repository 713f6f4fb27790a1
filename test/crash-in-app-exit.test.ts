/**
 * An app's own fatal error, outside any task's code, while it runs a flow with `flow.run()` and
 * does not listen for it (test/fixtures/app-own-crash.ts, a real process: vitest's own listeners
 * would take the errors here). Node would print it and exit 1, which a supervisor relies on; the
 * guard swallowed it and the app went on with exit code 0. Now the open runs are recorded FAILED,
 * then the process ends as Node's would: the stack on stderr, exit code 1. An app that listens
 * for the event itself keeps it, and goes on.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repo, tmp, tsxScript } from "./cache/helpers.ts";
import { cairn } from "./cli/helpers.ts";

const fixture = join(repo, "test/fixtures/app-own-crash.ts");

/** The app run with `mode`, and the flow run's record as `cairn show` reads it. */
async function app(mode: string) {
  const root = await tmp("cairn-app-crash-");
  const exit = await tsxScript(fixture, [root, mode]).done;
  const runId = exit.json[0]?.runId as string;
  const shown = JSON.parse((await cairn(["show", runId, "--json", "--root", root])).stdout) as { run: { status: string; tags: Record<string, string> } };
  return { exit, run: shown.run };
}

describe("an app's own error outside any task, while a run is open", () => {
  it("a throw in the app's timer: the run is recorded FAILED, then the stack is on stderr and the process exits 1", async () => {
    const { exit, run } = await app("timer");
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/Error: the app's own timer threw\n\s+at .*app-own-crash\.ts:\d+:\d+/);
    expect(run.status).toBe("FAILED");
    expect(run.tags["cairn.error.name"]).toBe("ProcessCrashError");
    // The run's end reached the app first; the app's code after it did not run on.
    expect(exit.json).toContainEqual({ status: "failed", error: "ProcessCrashError" });
    expect(exit.json).not.toContainEqual({ wentOn: true });
  });

  it("a rejection of the app's own promise (Node's default mode): the same, as Node would end the process", async () => {
    const { exit, run } = await app("rejection");
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/Error: the app's own rejection\n\s+at .*app-own-crash\.ts:\d+:\d+/);
    expect(run.status).toBe("FAILED");
  });

  it("an app that listens for uncaughtException itself keeps the error: the run goes on, and so does the app", async () => {
    const { exit, run } = await app("listener");
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.json).toContainEqual({ status: "succeeded" });
    expect(exit.json).toContainEqual({ wentOn: true });
    expect(run.status).toBe("FINISHED");
  });
});
