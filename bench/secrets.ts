/**
 * The leak check and the mask, per call: what a task pays for them. A task's output is
 * checked once (`assertClean`), its error (if any) and each of its log lines are masked
 * once. Prints one JSON line per case; the engine-level figure is engine-overhead.ts
 * with its third argument (secrets known).
 *   tsx bench/secrets.ts
 */
import { SecretRegistry } from "../packages/core/src/run/secrets.ts";

const registry = (n: number, escaped: boolean) =>
  new SecretRegistry(Object.fromEntries(Array.from({ length: n }, (_, i) => [`S${i}`, escaped ? `bench-secret-${i}-"quoted"\\-é` : `bench-secret-${i}-plain`])), {});
const output = {
  model: { kind: "cairn.artifact", path: "/home/u/project/.cairn/artifacts/0123456789abcdef0123456789abcdef/model.pkl", artifactPath: "model.pkl", runId: "0123456789abcdef0123456789abcdef" },
  accuracy: 0.93,
  rows: 1000,
  label: "baseline run",
};
const line = "epoch 12/200: loss=0.0342 accuracy=0.931 lr=0.001 (batch 128, 4.2 s) -- nothing secret here";
const error = { name: "Error", message: "auth failed: the server said 401 Unauthorized for https://models.example.com/score (attempt 3 of 3)" };

function ns(f: () => void, n = 200_000): number {
  for (let i = 0; i < 10_000; i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  return Math.round(((performance.now() - t) * 1e6) / n);
}

for (const escaped of [false, true]) {
  for (const n of [0, 1, 3, 10]) {
    const r = registry(n, escaped);
    console.log(
      JSON.stringify({
        bench: "secrets",
        secrets: n,
        kind: escaped ? "with quote, backslash, non-ASCII (5 forms each)" : "plain (1 form each)",
        checkOutputNs: ns(() => r.assertClean(output, "t", "its outputs")),
        maskLineNs: ns(() => r.mask(line)),
        maskErrorNs: ns(() => r.maskError(error)),
      }),
    );
  }
}
