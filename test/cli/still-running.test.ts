/**
 * `cairn run` off a terminal (a CI log) while its tasks print nothing, or print without a
 * newline: after CAIRN_STILL_RUNNING_MS without a line, one line says which tasks still run, so
 * that a CI that kills a silent job (CircleCI, Travis: 10 minutes) does not kill a working one.
 */
import { describe, expect, it } from "vitest";
import { cairn, fixture } from "./helpers.ts";

const flowFile = fixture("silent.flow.ts");
const args = ["run", flowFile, "--no-tracking", "--no-cache"];

describe("the plain lines say which tasks still run after a silence", () => {
  // Nothing was printed from the tasks' start until 3 s later: dots without a newline show only at its end.
  it("a shell task printing dots without a newline, a function task printing nothing: named, with how long each has run", async () => {
    const r = await cairn(args, { env: { CAIRN_STILL_RUNNING_MS: "700" } });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    const still = lines.filter((l) => l.includes("still running: "));
    expect(still.length, r.stdout).toBeGreaterThanOrEqual(2);
    for (const line of still) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z still running: (dots|hush) \([\d.]+m?s\), (dots|hush) \([\d.]+m?s\)$/);
    // Before the task's own output, which comes at its end.
    expect(lines.indexOf(still[0]!)).toBeLessThan(lines.findIndex((l) => l.includes("[dots] ...done")));
  });

  it("not with CAIRN_STILL_RUNNING_MS=0, nor under --json (stdout is the events, the variable not read), and a value that is no number is refused", async () => {
    const [off, json, bad, unread] = await Promise.all([
      cairn(args, { env: { CAIRN_STILL_RUNNING_MS: "0" } }),
      cairn([...args, "--json"], { env: { CAIRN_STILL_RUNNING_MS: "700" } }),
      cairn(args, { env: { CAIRN_STILL_RUNNING_MS: "1m" } }),
      cairn([...args, "--json"], { env: { CAIRN_STILL_RUNNING_MS: "1m" } }),
    ]);
    expect(unread.code, unread.stderr).toBe(0);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).not.toContain("still running");
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout + json.stderr).not.toContain("still running");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`Expected CAIRN_STILL_RUNNING_MS to be an integer from 0 to 2147483647 (about 24.8 days`);
    expect(bad.stderr).toContain(`got "1m"`);

  });
});
