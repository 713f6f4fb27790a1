/**
 * The leak check and the mask, per call: what a task pays for them. A task's output is
 * checked once (`assertClean`), its error (if any) and each of its log lines are masked
 * once. Prints one JSON line per case; the engine-level figure is engine-overhead.ts
 * with its third argument (secrets known).
 *   tsx bench/secrets.ts
 */
import { SecretRegistry, textForms } from "../packages/core/src/run/secrets.ts";

/** The secrets: plain words, the same with a quote, a backslash and a non-ASCII letter, and a token (random letters and digits) with them. */
const KINDS = {
  plain: (i: number) => `bench-secret-${i}-plain`,
  escaped: (i: number) => `bench-secret-${i}-"quoted"\\-é`,
  token: (i: number) => `tok_9f8a7b6c5d4e3f2a1b0c${i}-"q"\\-é`,
};
const registry = (n: number, kind: keyof typeof KINDS) => new SecretRegistry(Object.fromEntries(Array.from({ length: n }, (_, i) => [`S${i}`, KINDS[kind](i)])), {});
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

for (const kind of Object.keys(KINDS) as Array<keyof typeof KINDS>) {
  for (const n of [0, 1, 3, 10]) {
    const r = registry(n, kind);
    console.log(
      JSON.stringify({
        bench: "secrets",
        secrets: n,
        kind: `${kind} (${textForms(KINDS[kind](0)).length} form${textForms(KINDS[kind](0)).length === 1 ? "" : "s"} each)`,
        checkOutputNs: ns(() => r.assertClean(output, "t", "its outputs")),
        maskLineNs: ns(() => r.mask(line)),
        maskErrorNs: ns(() => r.maskError(error)),
      }),
    );
  }
}
