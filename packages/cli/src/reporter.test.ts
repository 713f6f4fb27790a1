import { describe, expect, it } from "vitest";
import { createColors } from "picocolors";
import { createReporter, flowSize, formatDuration, summary } from "./reporter.ts";

describe("formatDuration", () => {
  it("rounds the whole duration before splitting it, so a unit never shows its own limit", () => {
    expect(formatDuration(119_600)).toBe("2m 00s");
    expect(formatDuration(59_960)).toBe("1m 00s");
    expect(formatDuration(999.6)).toBe("1.0s");
    expect(formatDuration(60_400)).toBe("1m 00s");
  });

  it("writes ms below a second, tenths below a minute, then minutes and two-digit seconds", () => {
    expect(formatDuration(850)).toBe("850ms");
    expect(formatDuration(1_234)).toBe("1.2s");
    expect(formatDuration(59_940)).toBe("59.9s");
    expect(formatDuration(185_000)).toBe("3m 05s");
    expect(formatDuration(3_601_000)).toBe("60m 01s");
  });
});

describe("the summary's Outputs line", () => {
  const result = (outputs: unknown) => ({ status: "succeeded", runId: "r1", durationMs: 5, tasks: {}, outputs }) as unknown as Parameters<typeof summary>[0];
  const outputsLine = (outputs: unknown) => summary(result(outputs), createColors(false)).split("\n").find((l) => l.startsWith("Outputs: "))!;

  it("cuts a large value, saying how much more there is and where it is whole", () => {
    const line = outputsLine({ items: Array.from({ length: 1000 }, (_, i) => `item-${i}`) });
    expect(line.length).toBeLessThan(2100);
    expect(line).toMatch(/… \(\d+ more characters; --json prints them whole\)$/);
    expect(outputsLine({ n: 1 })).toBe(`Outputs: {"n":1}`);
  });

  it("shows control characters and bidi overrides in a value as escapes", () => {
    expect(outputsLine({ s: "a\u009b2Jb\u202ec" })).toBe(`Outputs: {"s":"a\\x9b2Jb\\u202ec"}`);
  });

  // It named the recorded downloads path, which was never written (the download failed on a full disk).
  it("shows an artifact of an output that could not be downloaded as its runs:/ URI and why, never as its path", () => {
    const artifact = (runId: string, artifactPath: string) => ({ kind: "cairn.artifact", path: `/r/.cairn/downloads/${runId}/${artifactPath}`, artifactPath, runId, digest: "d" });
    const outputs = { data: artifact("abc", "nested/data.txt"), parts: [artifact("abc", "parts/one.txt")], kept: artifact("abc", "kept.txt"), n: 5 };
    const why = "Cannot write the file of mlflow-artifacts GET nested/data.txt into /r/.cairn/downloads/abc/nested: ENOSPC: no space left on device, write";
    const r = { ...result(outputs), notDownloaded: { data: why, parts: why } } as Parameters<typeof summary>[0];
    const line = summary(r, createColors(false)).split("\n").find((l) => l.startsWith("Outputs: "))!;
    expect(JSON.parse(line.slice("Outputs: ".length))).toEqual({
      data: `runs:/abc/nested/data.txt (not downloaded: ${why})`,
      parts: [`runs:/abc/parts/one.txt (not downloaded: ${why})`],
      kept: "/r/.cairn/downloads/abc/kept.txt",
      n: 5,
    });
  });
});

describe("the summary's rows", () => {
  it("says under a stopped map's row how many of its items did not start (they have no row of their own)", () => {
    const result = {
      status: "failed",
      runId: "r1",
      durationMs: 5,
      tasks: {
        sq: { task: "sq", status: "failed", attempts: 0, expands: "map", notStarted: 197, error: { name: "MapItemsFailedError", message: "Map \"sq\": 1 of 200 items failed" } },
        "sq[1]": { task: "sq[1]", status: "failed", attempts: 1, parent: "sq", item: 1, error: { name: "Error", message: "bad item" } },
      },
    } as unknown as Parameters<typeof summary>[0];
    const lines = summary(result, createColors(false)).split("\n");
    const row = lines.findIndex((l) => l.startsWith("sq "));
    expect(lines.slice(row + 1, row + 3).map((l) => l.trim())).toEqual([
      `Map "sq": 1 of 200 items failed`,
      "197 items did not start (no run of their own; the map's run counts them: cairn.not_started)",
    ]);
  });
});

describe("the summary's task column", () => {
  it("cuts a very long task name in its middle, keeping its start and its item's [k], so the other rows stay narrow", () => {
    const long = `${"a".repeat(2048)}${"z".repeat(2044)}[12]`;
    const result = {
      status: "succeeded",
      runId: "r1",
      durationMs: 5,
      tasks: {
        [long]: { task: long, status: "succeeded", attempts: 1, runId: "a1", durationMs: 3 },
        prep: { task: "prep", status: "succeeded", attempts: 1, runId: "b2", durationMs: 4 },
      },
    } as unknown as Parameters<typeof summary>[0];
    const lines = summary(result, createColors(false)).split("\n");
    const cut = lines.find((l) => l.startsWith("aaa"))!;
    const prep = lines.find((l) => l.startsWith("prep "))!;
    expect(cut).toMatch(/^a{30}…z{25}\[12\]\s+succeeded\s+3ms\s+a1$/);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(120);
    expect(prep.indexOf("b2")).toBe(cut.indexOf("a1"));
  });
});

describe("a succeeded task whose result was not stored (its run could not be closed)", () => {
  const result = {
    status: "failed",
    runId: "r1",
    durationMs: 5,
    tasks: {
      prep: { task: "prep", status: "succeeded", attempts: 1, runId: "a1", durationMs: 3, recorded: false },
      slow: { task: "slow", status: "succeeded", attempts: 1, runId: "b2", durationMs: 4 },
    },
  } as unknown as Parameters<typeof summary>[0];

  it("shows as `succeeded, not recorded` in the summary's table, the columns kept aligned", () => {
    const lines = summary(result, createColors(false)).split("\n");
    const prep = lines.find((l) => l.startsWith("prep "))!;
    const slow = lines.find((l) => l.startsWith("slow "))!;
    expect(prep).toMatch(/^prep\s+succeeded, not recorded\s+3ms\s+a1$/);
    expect(slow.indexOf("b2")).toBe(prep.indexOf("a1"));
  });

  it("cuts a line of a task's error longer than 1000 characters in its middle, on its plain line and in the summary, saying where the whole text is", async () => {
    let text = "";
    const out = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
    const huge = `start ${"x".repeat(2_000_000)} end`;
    const error = { name: "Error", message: `first line\n${huge}` };
    const reporter = await createReporter("plain", out as never, out as never, false, undefined, { recorded: false });
    reporter.event({ type: "task", status: "failed", runId: "r1", task: "big", taskRunId: "a1", durationMs: 3, error, time: Date.now() });
    reporter.finish({ status: "failed", runId: "r1", durationMs: 5, tasks: { big: { task: "big", status: "failed", attempts: 1, runId: "a1", error } } } as never);
    expect(text.length).toBeLessThan(5000);
    const lines = text.split("\n").filter((l) => l.includes("characters cut"));
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/start x+ … \[1999110 characters cut; --json prints the whole text\] … x+ end$/);
    // Recorded runs: the task run's error file has it.
    expect(summary({ status: "failed", runId: "r1", durationMs: 5, tasks: { big: { task: "big", status: "failed", attempts: 1, runId: "a1", error } } } as never, createColors(false))).toContain(
      " … [1999110 characters cut; its task run's artifact cairn/error.txt has the whole text, and --json prints it] … ",
    );
  });

  it("says `not recorded` on its plain line", async () => {
    let text = "";
    const out = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
    const reporter = await createReporter("plain", out as never, out as never, false);
    reporter.event({ type: "task", status: "succeeded", runId: "r1", task: "prep", taskRunId: "a1", durationMs: 3, recorded: false, time: Date.now() });
    expect(text).toMatch(/succeeded\s+prep {2}3ms {2}not recorded\n$/);
  });
});

describe("a sweep's leaderboard", () => {
  const lines = (text: string) => text.split("\n");
  /** A succeeded flow whose one task is a sweep `fit` (max of score) of these trials, `best` its best. */
  const sweepResult = (trials: readonly { trial: string; params: object; metric: number; status: "succeeded" }[], best: string) =>
    ({
      status: "succeeded",
      runId: "r1",
      durationMs: 5,
      tasks: { fit: { task: "fit", status: "succeeded", attempts: 0, expands: "sweep", select: { metric: "score", order: "max" }, outputs: { trial: best, trials } } },
    }) as unknown as Parameters<typeof summary>[0];

  it("ranks by the sweep's selector, as the sweep did: min(loss) puts the smallest first", async () => {
    const { flow, list, min, sweep, task } = await import("@cairn/dsl");
    const fit = task("fit")
      .input<{ lr: number }>()
      .run(({ lr }) => ({ loss: lr }));
    const f = flow("leaderboard-min").build(() => ({ t: sweep(fit, { over: list([{ lr: 0.3 }, { lr: 0.1 }, { lr: 0.2 }]), select: min("loss") }).trial }));
    const result = await (await f.run({ tracker: false, cache: false })).wait();
    expect(result.tasks.fit!.select).toEqual({ metric: "loss", order: "min" });
    const all = lines(summary(result, createColors(false)));
    const rows = all.slice(all.findIndex((l) => l.startsWith("Sweep fit:")) + 2, all.findIndex((l) => l.startsWith("Sweep fit:")) + 5);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(["fit[1]", "fit[2]", "fit[0]"]);
  });

  it("lists a sweep of 150,000 trials (no spread of every metric into one call: it overflowed the stack)", () => {
    const trials = Array.from({ length: 150_000 }, (_, i) => ({ trial: `fit[${i}]`, params: { i }, metric: i % 1000, status: "succeeded" as const }));
    const text = summary(sweepResult(trials, "fit[999]"), createColors(false));
    expect(text).toContain("Sweep fit: 150000 trials, best fit[999]");
    expect(lines(text).find((l) => l.startsWith("fit["))).toMatch(/^fit\[999\]\s+i=999\s+999\s/);
    expect(text).toContain("… and 149980 more trials");
  });

  it("writes each trial's point as its cairn.item_key tag does, and cuts a long one: one 9,000-character value padded every row to its width", () => {
    const trials = [
      { trial: "fit[0]", params: { name: "1", on: "true", pair: "a,b=c", lr: 0.1 }, metric: 2, status: "succeeded" as const },
      { trial: "fit[1]", params: { name: "x".repeat(9000), lr: 0.2 }, metric: 1, status: "succeeded" as const },
    ];
    const rows = lines(summary(sweepResult(trials, "fit[0]"), createColors(false))).filter((l) => l.startsWith("fit["));
    expect(rows[0]).toMatch(/^fit\[0\]\s+lr=0\.1,name="1",on="true",pair="a,b=c"\s+2\s/);
    expect(rows[1]).toMatch(/^fit\[1\]\s+lr=0\.2,name=x+…\s+1\s/);
    for (const row of rows) expect(row.length).toBeLessThan(120);
  });
});

describe("a waiting task's line", () => {
  it("says who holds the key's lease and when it lapses", async () => {
    let text = "";
    const out = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
    const reporter = await createReporter("plain", out as never, out as never, false);
    const time = Date.now();
    reporter.event({ type: "task", status: "waiting", runId: "r2", task: "flaky", heldBy: { process: "vm:4242", runId: "b71bf0f4", expiresAt: time + 8_200 }, time });
    expect(text).toMatch(/… waiting\s+flaky {2}held by vm:4242 \(run b71bf0f4\), lapses in 9 s\n$/);
  });
});

describe("the live view's header line", () => {
  it("says, after the tasks, that the hits' runs are still being recorded and how many are left; not once they are done", async () => {
    const { PassThrough } = await import("node:stream");
    const { createReporter } = await import("./reporter.ts");
    let written = "";
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200, rows: 24 });
    out.on("data", (d: Buffer) => (written += d.toString()));
    const reporter = await createReporter("live", out, out, false);
    reporter.event({ type: "flow", status: "running", runId: "r", flow: "big", time: Date.now() });
    const note = "recording 600 cached tasks' runs in MLflow (412 left)";
    reporter.event({ type: "log", level: "info", runId: "r", message: note, recording: { runs: 600, left: 412 }, time: Date.now() });
    // Before, only "0 done · 0 running" showed, for minutes.
    expect(written.split("\n").filter((l) => l.includes(note) && l.includes("big") && l.includes("done · 0 running"))).not.toEqual([]);
    // Said on the header, not printed as a line of its own above the block.
    expect(written).not.toContain(`[flow] ${note}`);
    reporter.event({ type: "log", level: "info", runId: "r", message: "recording 600 cached tasks' runs in MLflow (0 left)", recording: { runs: 600, left: 0 }, time: Date.now() });
    expect(written.slice(written.lastIndexOf("done · 0 running")).split("\n")[0]).not.toContain("recording");
    reporter.finish({ runId: "r", status: "succeeded", tasks: {}, durationMs: 1 });
  });
});

describe("the live view's total", () => {
  /** A live reporter of a flow of `size` on a wide terminal, and the header line of its last frame. */
  async function liveView(size: Parameters<typeof createReporter>[4]) {
    const { PassThrough } = await import("node:stream");
    let written = "";
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200, rows: 24 });
    out.on("data", (d: Buffer) => (written += d.toString()));
    const reporter = await createReporter("live", out, out, false, size);
    const time = Date.now();
    reporter.event({ type: "flow", status: "running", runId: "r", flow: "f", time });
    const task = (task: string, status: "running" | "succeeded" | "cancelled", more: { parent?: string; items?: number } = {}) => reporter.event({ type: "task", status, runId: "r", task, ...more, time });
    const header = () => written.slice(written.lastIndexOf(" f  ")).split("\n")[0]!;
    const end = () => reporter.finish({ runId: "r", status: "succeeded", tasks: {}, durationMs: 1 });
    return { task, header, end };
  }

  it("counts a static flow's tasks", async () => {
    const view = await liveView(flowSize({ nodes: [{ id: "a" }, { id: "b" }, { id: "c" }] }));
    view.task("a", "running");
    view.task("a", "succeeded");
    expect(view.header()).toContain(" f  1/3 done · 0 running");
    view.end();
  });

  it("adds a map's items once its running event says how many, with `+` until then", async () => {
    const view = await liveView(flowSize({ nodes: [{ id: "gen" }, { id: "sq", map: {} }, { id: "sum" }] }));
    view.task("gen", "running");
    view.task("gen", "succeeded");
    // Before: "1 done · 0 running", with no total at all.
    expect(view.header()).toContain(" f  1/3+ done · 0 running");
    view.task("sq", "running", { items: 2000 });
    view.task("sq[0]", "running", { parent: "sq" });
    view.task("sq[0]", "succeeded", { parent: "sq" });
    expect(view.header()).toContain(" f  2/2003 done · 1 running");
    view.end();
  });

  it("counts a map that ends before all its items ran (stopped) by the items that ended, so that the total is reached", async () => {
    const view = await liveView(flowSize({ nodes: [{ id: "sq", map: {} }] }));
    view.task("sq", "running", { items: 2000 });
    for (const k of [0, 1]) view.task(`sq[${k}]`, "cancelled", { parent: "sq" });
    view.task("sq", "cancelled");
    expect(view.header()).toContain(" f  3/3 done · 0 running");
    view.end();
  });

  it("a map that ends before its list is known (skipped, cancelled) leaves `+` off", async () => {
    const view = await liveView(flowSize({ nodes: [{ id: "gen" }, { id: "sq", map: {} }] }));
    view.task("gen", "cancelled");
    view.task("sq", "cancelled");
    expect(view.header()).toContain(" f  2/2 done · 0 running");
    view.end();
  });
});
