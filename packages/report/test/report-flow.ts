/**
 * The flow the report tests run: every state a task can end in. `prepare` depends on the param
 * `n` (a miss with a reason when `n` changes), `steady` does not (a cache hit on the second run),
 * `flaky` fails its first attempt and succeeds on its retry, `boom` (a shell task) writes to
 * stderr and fails, `after` depends on it and is skipped; `echo` takes the param `note`, markup
 * by default, as an input (recorded as its run's param).
 */
import { flow, shell, task } from "cairn-dag";
import { z } from "zod";

const prepare = task("prepare")
  .input<{ n: number }>()
  .run(async ({ n }, ctx) => {
    ctx.log.metric("n", n);
    return { value: n * 2, label: `n=${n}` };
  });
const steady = task("steady").run(async () => ({ constant: 42 }));
const flaky = task("flaky")
  .input<{ value: number; constant: number }>()
  .retries(1, { minDelayMs: 30, maxDelayMs: 30 })
  .run(async ({ value, constant }, ctx) => {
    if (ctx.attempt === 1) throw new Error("the first attempt fails");
    ctx.log.metric("score", value + constant);
    return { score: value + constant };
  });
const boom = shell("boom", "echo starting up; echo 'disk <b>full</b> & more' >&2; exit 3");
const after = task("after")
  .input<{ out: unknown }>()
  .run(async () => ({ ok: true }));
const echo = task("echo")
  .input<{ label: string }>()
  .run(async ({ label }) => ({ echoed: label }));

export const reportFlow = flow("report-demo")
  .params(z.object({ n: z.number().int().default(1), note: z.string().default("<script>alert(1)</script>") }))
  .build(({ params }) => {
    const p = prepare({ n: params.n });
    const s = steady();
    const f = flaky({ value: p.value, constant: s.constant });
    const b = boom();
    after({ out: b.stdout });
    echo({ label: params.note }, { after: [p] });
    return { score: f.score };
  });
