/**
 * What a CLI review met: input a user gives by mistake (a typo, a flag that cannot apply, a
 * value copied from a .env file with its quotes) is met with words that name it and say how
 * to fix it, not with silence or with words meant for another case.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, repo } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("refusals that name what the user gave, and the fix", () => {
  it.each([
    // Was "while it records to none (none)": neither the flag nor the fix was named.
    [["run", ok, "--queue", "redis://127.0.0.1:1", "--no-tracking"], {}, /records to no tracker \(`--no-tracking`, or `tracker: false`, records no runs\): .* Drop --no-tracking \(or `tracker: false`\), and set MLFLOW_TRACKING_URI=/],
  ] as Array<[string[], NodeJS.ProcessEnv, RegExp]>)("cairn %s", async (args, env, message) => {
    const r = await cairn(args, { env });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });
});
