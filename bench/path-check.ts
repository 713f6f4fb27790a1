/**
 * The per-task cost of the hardening checks on outputs: the artifact-name check
 * (safeRelativePath) and the normalisation of an output to its stored JSON form
 * (storedForm). Prints one JSON line per case: ns per call, µs per task.
 *   tsx bench/path-check.ts
 */
import { safePathSegment, safeRelativePath } from "@cairn/core";
import { storedForm } from "../packages/core/src/definition/serializable.ts";

const from = { taskName: "t", source: "bench" };
const runId = "74e5c0d9f8784075aadf34b29f0c08bc";

/** Median ns per call of `f` over 7 timed rounds of `n` calls, after a warm-up. */
function median(f: () => void, n: number): number {
  for (let i = 0; i < n / 10; i++) f();
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t) / n);
  }
  return rounds.sort((a, b) => a - b)[3]!;
}

const plain = ["data.csv", "reports/2024/summary.md", "logs/stdout.txt", "model/model.json"];
let k = 0;
console.log(JSON.stringify({ bench: "path-check", case: "one plain name", nsPerCall: Math.round(median(() => safeRelativePath(plain[k++ % plain.length], from), 1_000_000)) }));

for (const n of [1, 10, 100]) {
  const names = Array.from({ length: n }, (_, i) => `outputs/part-${i}/data-${i}.parquet`);
  // A task with n artifacts: n checks when they are written, and on a cache hit 1 + 3n
  // (the entry's run id; each artifact's run id, name, and manifest record).
  const perTask = () => {
    for (const a of names) safeRelativePath(a, from);
    safePathSegment(runId, from);
    for (const a of names) {
      safePathSegment(runId, from);
      safeRelativePath(a, from);
      safeRelativePath(a, from);
    }
  };
  console.log(JSON.stringify({ bench: "path-check", case: `task with ${n} artifacts, written then restored`, usPerTask: +(median(perTask, Math.round(100_000 / n)) / 1000).toFixed(2) }));
}

const output = { a: 1, b: "text", c: [1, 2, 3], d: { kind: "cairn.artifact", path: "/p/x", artifactPath: "x", runId }, e: { f: true, g: null } };
console.log(JSON.stringify({ bench: "stored-form", case: "typical output, already stored", nsPerCall: Math.round(median(() => storedForm(output), 1_000_000)) }));
const withUndefined = { ...output, h: undefined };
console.log(JSON.stringify({ bench: "stored-form", case: "same with an undefined property", nsPerCall: Math.round(median(() => storedForm(withUndefined), 1_000_000)) }));
