/**
 * `cairn run --json`: the final flow event carries the flow's outputs as the human view's
 * `Outputs:` line shows them, artifacts in their JSON form (a local file, its run, digest and
 * size), also when every task came from the cache; a failed flow's final event carries none.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairn, fixture, repo, tmp } from "./helpers.ts";

const last = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, any>;

describe("the final --json event carries the flow's outputs", () => {
  it("numbers, strings and artifacts, nested too, on a first run and on a cached re-run", async () => {
    const cwd = await tmp("cairn-cli-json-");
    const first = await cairn(["run", fixture("artifact-output.flow.ts"), "--json"], { cwd });
    expect(first.code).toBe(0);
    const done = last(first.stdout);
    expect(done).toMatchObject({ type: "flow", status: "succeeded" });
    const artifact = done.outputs.report;
    expect(artifact).toMatchObject({ kind: "cairn.artifact", artifactPath: "report.txt", runId: expect.stringMatching(/^[0-9a-f]{32}$/), size: 7 });
    expect(readFileSync(artifact.path, "utf8")).toBe("rows=3\n");
    expect(done.outputs).toEqual({ report: artifact, rows: 3, nested: { label: "done", files: [artifact] } });

    const again = await cairn(["run", fixture("artifact-output.flow.ts"), "--json"], { cwd });
    expect(again.code).toBe(0);
    expect(again.json.filter((e) => e.type === "task").map((e) => e.status)).toContain("cached");
    const cached = last(again.stdout);
    expect(cached.outputs).toEqual(done.outputs);
    expect(existsSync(cached.outputs.report.path)).toBe(true);

    // The human view prints the same outputs, artifacts as their path.
    const plain = await cairn(["run", fixture("artifact-output.flow.ts")], { cwd });
    expect(plain.stdout).toContain(`Outputs: ${JSON.stringify({ report: artifact.path, rows: 3, nested: { label: "done", files: [artifact.path] } })}`);
  });

  it("what a function task writes to stdout itself goes to stderr: stdout stays one JSON event a line", async () => {
    const r = await cairn(["run", fixture("console-log.flow.ts"), "--json"], { cwd: await tmp("cairn-cli-json-") });
    expect(r.code, r.stderr).toBe(0);
    for (const line of r.stdout.trim().split("\n")) expect(() => JSON.parse(line), line).not.toThrow();
    expect(last(r.stdout)).toMatchObject({ type: "flow", status: "succeeded", outputs: { n: 1 } });
    expect(r.stderr).toContain("console.log from task\n");
    expect(r.stderr).toContain("raw write from task\n");
  });

  it("with tracking off too", async () => {
    const r = await cairn(["run", join(repo, "test/fixtures/ok.flow.ts"), "--json", "--no-tracking", "-p", "rows=5"]);
    expect(r.code).toBe(0);
    expect(last(r.stdout)).toMatchObject({ type: "flow", status: "succeeded", outputs: { result: 20, label: "none" } });
  });

  it("a failed flow's final event has no outputs", async () => {
    const r = await cairn(["run", join(repo, "test/fixtures/fails.flow.ts"), "--json"]);
    expect(r.code).toBe(1);
    const done = last(r.stdout);
    expect(done).toMatchObject({ type: "flow", status: "failed" });
    expect(done).not.toHaveProperty("outputs");
  });
});

describe("a reader that goes away (cairn run --json | head -1)", () => {
  it("the run goes on to its end and is recorded FINISHED; what is left to print is dropped", async () => {
    const cwd = await tmp("cairn-cli-epipe-");
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, [join(repo, "packages/cli/bin/cairn.mjs"), "run", join(repo, "test/reliability/fixtures/slow-task.flow.ts"), "--json"], {
      cwd,
      env: { ...process.env, SLOW_MS: "500", MLFLOW_TRACKING_URI: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    // As `head -1` does: read the first line, then close the pipe.
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE/);
    expect(code, stderr).toBe(0);
    const runs = await cairn(["runs", "--json"], { cwd });
    expect(runs.stderr).not.toMatch(/Closed/);
    expect((JSON.parse(runs.stdout) as Array<{ status: string }>)[0]!.status).toBe("FINISHED");
  });
});

