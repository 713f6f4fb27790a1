/**
 * `flow.run()` in an app with its own uncaughtException listener (test/fixtures/crash-in-app.ts,
 * a real process: vitest's own listeners would take the errors here). An unawaited rejection in
 * a task fails that task and its flow, and still reaches the app's listener, as Node would pass
 * it on; an error of the app's own code, outside any task, is left to the app and the run goes
 * on; once the runs have ended, the listeners and process.exit are the app's again.
 */
import { join } from "node:path";
import { expect, it } from "vitest";
import { repo, tsxScript } from "./cache/helpers.ts";

it("a crash in a task fails its flow in an app, and the app's own listeners see what they saw before", async () => {
  const exit = await tsxScript(join(repo, "test/fixtures/crash-in-app.ts"), []).done;
  expect(exit.code, exit.stderr).toBe(0);
  expect(exit.json.at(-1)).toEqual({
    first: { status: "failed", task: "failed", error: "ProcessCrashError" },
    second: "succeeded",
    seen: ["from the task", "from the app"],
    listeners: 1,
    rejectionListeners: 0,
    exitRestored: true,
  });
});
