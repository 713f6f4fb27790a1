/**
 * A task whose output holds thousands of small artifacts: each is digested for its cache entry a
 * few at a time, so the run fits in an ordinary limit of open files (`ulimit -n`), cold and warm,
 * and the warm run finds the same digests. A real `cairn run` under bash's `ulimit`.
 */
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { fixture, tmp } from "./helpers.ts";

describe("an output of thousands of artifacts", () => {
  it("is recorded and reused under `ulimit -n 256`: its files are not all opened at once", async () => {
    const cwd = await tmp("cairn-cli-artifacts-");
    const run = () =>
      start("bash", ["-c", 'ulimit -n 256 && exec "$0" "$@"', process.execPath, cairnBin, "run", fixture("many-artifacts.flow.ts"), "--json"], {
        cwd,
        env: childEnv({ ARTIFACTS: "2000" }),
      }).done;
    const cold = await run();
    expect(cold.code, cold.stderr).toBe(0);
    const made = cold.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs as { files: Array<{ digest: string; artifactPath: string }> };
    expect(made.files).toHaveLength(2000);
    const warm = await run();
    expect(warm.code, warm.stderr).toBe(0);
    expect(warm.json.find((e) => e.type === "task" && e.task === "make" && e.status === "cached")).toBeDefined();
    const reused = warm.json.find((e) => e.type === "flow" && e.status === "succeeded")?.outputs as typeof made;
    expect(reused.files.map((f) => f.digest)).toEqual(made.files.map((f) => f.digest));
    // A digest is of the file's bytes (sha256, as sha256sum prints it).
    const { createHash } = await import("node:crypto");
    expect(made.files[1234]!.digest).toBe(createHash("sha256").update("file 1234\n").digest("hex"));
  }, 180_000);
});
