/**
 * `cairn run` printing to a pipe that is read slower than a task prints (`| less` on its first
 * page, a CI runner reading in bursts): the task's lines past a backlog of 4 MB are not shown,
 * a note per task says how many, and the CLI's memory does not grow with what the task printed;
 * the task is not slowed, and its log file still gets every line. With `--json`, the same for
 * the log lines on stderr. A line kept in no log file (a function task's ctx.logger) is always shown.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { fixture, tmp } from "./helpers.ts";

const LINE = "x".repeat(99);

/**
 * Runs the loud-shell fixture printing `bytes`, its `stream` (1: stdout, 2: stderr) piped to a
 * reader that takes nothing until the task has printed all (it creates a file then), the other
 * to a file. Returns what each got, the CLI's peak memory (GNU time's, when installed) and the task's log file.
 */
async function runWithSlowReader(bytes: number, stream: 1 | 2, args: string[] = [], flow = "loud-shell.flow.ts") {
  const cwd = await tmp("cairn-cli-slow-reader-");
  const timed = existsSync("/usr/bin/time");
  const cli = `${timed ? '/usr/bin/time -f %M -o "$PWD/peak.txt" ' : ""}"$NODE" "$CAIRN" run "$FLOW" --no-cache --no-tracking ${args.join(" ")}`;
  const reader = `{ while [ ! -e "$PWD/done" ]; do sleep 0.1; done; cat > "$PWD/read.txt"; }`;
  const script = stream === 1 ? `${cli} 2> "$PWD/other.txt" | ${reader}` : `{ ${cli} > "$PWD/other.txt"; } 2>&1 | ${reader}`;
  const exit = await start("sh", ["-c", script], {
    cwd,
    env: childEnv({ NODE: process.execPath, CAIRN: cairnBin, FLOW: fixture(flow), LOUD_BYTES: String(bytes), LOUD_DONE: join(cwd, "done"), LOUD_PRINTED: join(cwd, "printed"), TALKED: join(cwd, "talked") }),
  }).done;
  expect(exit.code, exit.stderr).toBe(0);
  const artifacts = join(cwd, ".cairn", "artifacts");
  const log = readdirSync(artifacts)
    .map((run) => join(artifacts, run, "logs", "stdout.txt"))
    .find((file) => existsSync(file))!;
  return {
    read: readFileSync(join(cwd, "read.txt"), "utf8"),
    other: readFileSync(join(cwd, "other.txt"), "utf8"),
    peakMB: timed ? Number(readFileSync(join(cwd, "peak.txt"), "utf8").trim().split("\n").at(-1)) / 1024 : undefined,
    logBytes: statSync(log).size,
  };
}

/** Lines of the task shown, and the counts of the notes of lines not shown. */
function shownAndNoted(text: string): { shown: number; noted: number; notes: number } {
  let shown = 0;
  let noted = 0;
  let notes = 0;
  for (const line of text.split("\n")) {
    if (line === `[loud] ${LINE}`) shown++;
    const note = /^\[loud\] … (\d+) lines? of its log not shown: this output was read slower than they came \(a process task's are all in its run's logs\/stdout\.txt and logs\/stderr\.txt\)$/.exec(line);
    if (note) {
      noted += Number(note[1]);
      notes++;
    }
  }
  return { shown, noted, notes };
}

describe("a task that prints faster than the CLI's output is read", () => {
  it("shows lines up to a 4 MB backlog, notes how many it did not show, and stays far below what the task printed", async () => {
    const r = await runWithSlowReader(60_000_000, 1);
    const { shown, noted, notes } = shownAndNoted(r.read);
    // Every line is shown or counted in a note; most were not shown, as the reader took none.
    expect(shown + noted).toBe(600_000);
    expect(notes).toBeGreaterThanOrEqual(1);
    expect(shown).toBeLessThan(100_000);
    expect(r.read).toMatch(/Flow succeeded in .*\nOutputs: \{"ok":1\}\n$/);
    expect(r.logBytes).toBe(60_000_000);
    // Held as Node's write buffer, the 60 MB took the CLI past 450 MB.
    if (r.peakMB !== undefined) expect(r.peakMB, `peak memory of cairn: ${Math.round(r.peakMB)} MB`).toBeLessThan(300);
  }, 60_000);

  it("with --json, the same for the log lines on stderr, while stdout keeps every event", async () => {
    const r = await runWithSlowReader(20_000_000, 2, ["--json"]);
    const { shown, noted, notes } = shownAndNoted(r.read);
    expect(shown + noted).toBe(200_000);
    expect(notes).toBeGreaterThanOrEqual(1);
    const events = r.other
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; status?: string });
    expect(events.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(r.logBytes).toBe(20_000_000);
  }, 60_000);

  it("always shows the lines of a task without a log file, whatever their level, while the process task's are left out", async () => {
    const r = await runWithSlowReader(20_000_000, 1, [], "loud-and-talk.flow.ts");
    const { shown, noted, notes } = shownAndNoted(r.read);
    expect(shown + noted).toBe(200_000);
    expect(notes).toBeGreaterThanOrEqual(1);
    // Logged while the backlog was past 4 MB: before, these were counted in a note and lost.
    for (const line of ["an info line", "a warning", "an error line"]) expect(r.read).toContain(`[talk] ${line}\n`);
    expect(r.read).not.toMatch(/\[talk\] … \d+ lines? of its log not shown/);
    expect(r.read).toMatch(/Outputs: \{"ok":1,"talked":1\}\n$/);
  }, 60_000);
});
