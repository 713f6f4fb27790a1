/**
 * A task whose code lets an error escape (an unawaited rejection, a throw in a timer) or calls
 * `process.exit()` while `cairn run` runs: Node would end the process at once, with no word and
 * every run left RUNNING. The run ends as failed instead: the error is printed, the task it came
 * from fails with it (while its attempt is open), the others are cancelled saying why, the flow
 * run is FAILED with the cause, and `cairn run` exits 1.
 */
import { describe, expect, it } from "vitest";
import { cairn, fixture, tmp } from "./helpers.ts";

interface Shown {
  run: { status: string; tags: Record<string, string> };
  tasks: Array<{ name: string; status: string; tags: Record<string, string> }>;
}

/** `cairn run` of the crashing flow with `-p how=<how>`, and the record `cairn show` reads of it. */
async function crashed(how: string, env: NodeJS.ProcessEnv = {}) {
  const root = await tmp("cairn-task-crash-");
  const exit = await cairn(["run", fixture("crashing-task.flow.ts"), "-p", `how=${how}`, "--json", "--root", root], { env });
  const runId = exit.json.at(-1)?.runId as string;
  const shown = JSON.parse((await cairn(["show", runId, "--json", "--root", root])).stdout) as Shown;
  const task = (name: string) => shown.tasks.find((t) => t.name === name)!;
  return { exit, run: shown.run, crasher: task("crasher"), bystander: task("bystander") };
}

describe("a task's code that would end the process", () => {
  it("an unawaited rejected promise fails its task with it, cancels the others and fails the flow", async () => {
    const { exit, run, crasher, bystander } = await crashed("reject");
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/crasher: The process met an unhandled promise rejection in the code of task "crasher": Error: nobody awaited me \(at .*crashing-task\.flow\.ts:\d+:\d+\)/);
    expect(crasher.status).toBe("FAILED");
    expect(crasher.tags["cairn.error"]).toMatch(/^ProcessCrashError: .*nobody awaited me/);
    expect(bystander.status).toBe("KILLED");
    expect(bystander.tags["cairn.error"]).toMatch(/Stopped because the flow failed: ProcessCrashError: .*in the code of task "crasher"/);
    expect(run.status).toBe("FAILED");
    expect(run.tags["cairn.error"]).toMatch(/nobody awaited me/);
  });

  it("a throw in a timer after its task returned fails the flow, naming the task, and cancels the others", async () => {
    const { exit, run, crasher, bystander } = await crashed("timer");
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/ProcessCrashError: The process met an uncaught exception in the code of task "crasher": Error: thrown in a timer \(at .*crashing-task\.flow\.ts:\d+:\d+\)/);
    // Its own attempt had ended: its work stands as it was recorded.
    expect(crasher.status).toBe("FINISHED");
    expect(bystander.status).toBe("KILLED");
    expect(run.status).toBe("FAILED");
    expect(run.tags["cairn.error.name"]).toBe("ProcessCrashError");
  });

  it("process.exit() in a task fails that task with a TaskExitError instead of ending the process", async () => {
    const { exit, run, crasher, bystander } = await crashed("exit");
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/crasher: Task "crasher" called process\.exit\(1\) while the flow ran/);
    expect(crasher.status).toBe("FAILED");
    expect(crasher.tags["cairn.error"]).toMatch(/^TaskExitError: /);
    expect(bystander.status).toBe("KILLED");
    expect(run.status).toBe("FAILED");
  });

  it("an uncaught exception outside any task's code fails the flow with it", async () => {
    const { exit, run, bystander } = await crashed("none", { CRASH_OUTSIDE: "1" });
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr).toMatch(/ProcessCrashError: The process met an uncaught exception outside any task's code: Error: thrown outside any task/);
    expect(bystander.status).toBe("KILLED");
    expect(run.status).toBe("FAILED");
    expect(run.tags["cairn.error"]).toMatch(/thrown outside any task/);
  });
});
