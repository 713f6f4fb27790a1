/**
 * resolveMarkers: a process task's `{"$artifact": "name"}` markers become Artifacts wherever they
 * are in its outputs, in a copy; every other value is kept as it is; of several wrong markers,
 * the first in the output's order is the error, whichever file is looked at first.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskContext } from "@cairn/core";
import { ProcessOutputError } from "./errors.ts";
import { resolveMarkers } from "./spawn.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-markers-"));
  await mkdir(join(dir, "plots"));
  await writeFile(join(dir, "model.bin"), "12345");
  await writeFile(join(dir, "plots", "roc.png"), "png");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The part of a task's ctx that resolveMarkers uses: its node id and its artifacts folder. */
const ctx = () =>
  ({
    nodeId: "fit",
    artifacts: { file: (artifactPath: string) => ({ kind: "cairn.artifact", path: join(dir, artifactPath), artifactPath, runId: "run-1" }) },
  }) as unknown as TaskContext;

const artifact = (artifactPath: string) => ({ kind: "cairn.artifact", path: join(dir, artifactPath), artifactPath, runId: "run-1" });

describe("resolveMarkers", () => {
  it("resolves markers inside nested arrays and objects, in a copy, keeping every other value", async () => {
    const outputs = {
      model: { $artifact: "model.bin" },
      nested: { runs: [{ plots: [1, { $artifact: "plots/roc.png" }] }, { $artifact: "plots" }] },
      notMarker: { $artifact: "model.bin", extra: 1 },
      numbers: Array.from({ length: 1000 }, (_, i) => i),
      text: "x".repeat(1000),
      nothing: null,
    };
    const before = structuredClone(outputs);
    const resolved = await resolveMarkers(outputs, "", dir, ctx());
    expect(resolved).toEqual({
      model: { ...artifact("model.bin"), size: 5 },
      nested: { runs: [{ plots: [1, { ...artifact("plots/roc.png"), size: 3 }] }, artifact("plots")] },
      notMarker: { $artifact: "model.bin", extra: 1 },
      numbers: outputs.numbers,
      text: outputs.text,
      nothing: null,
    });
    expect(outputs).toEqual(before);
    expect((resolved as { numbers: unknown }).numbers).not.toBe(outputs.numbers);
  });

  it("a marker that is the whole output, and the place a caller gives, name where it is", async () => {
    await expect(resolveMarkers({ $artifact: "model.bin" }, "", dir, ctx())).resolves.toEqual({ ...artifact("model.bin"), size: 5 });
    await expect(resolveMarkers({ $artifact: "" }, "", dir, ctx())).rejects.toThrow('output "(the whole output)" is an artifact marker whose name is not a non-empty string.');
    await expect(resolveMarkers([{ a: { $artifact: 3 } }], "out", dir, ctx())).rejects.toThrow('output "out[0].a" is an artifact marker');
  });

  it("of several wrong markers, the first in the output's order is the error, not the first to be found wrong", async () => {
    // The missing file is found missing only after a stat; the bad name at once.
    const outputs = { files: [{ $artifact: "missing.bin" }, { $artifact: 7 }] };
    const error = (await resolveMarkers(outputs, "", dir, ctx()).then(() => undefined, (e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(ProcessOutputError);
    expect(error.message).toContain('output "files[0]" names artifact "missing.bin", but there is no such file in CAIRN_ARTIFACTS');
  });
});
