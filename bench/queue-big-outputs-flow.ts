/** Flow of bench/queue-big-outputs.ts: one task returning about `mb` MB of JSON (100-character strings), the flow's output only their count. */
import { flow, task } from "cairn-dag";
import { z } from "zod";

const big = task("big")
  .input<{ mb: number }>()
  .run(({ mb }) => {
    const n = Math.round((mb * 1_000_000) / 103);
    return { rows: Array.from({ length: n }, (_, i) => `${"x".repeat(94)}${String(i).padStart(6, "0")}`), count: n };
  });

export default flow(process.env.FLOW_NAME ?? "big-outputs")
  .params(z.object({ mb: z.number().default(10) }))
  .build(({ params }) => ({ count: big({ mb: params.mb }).count }));
