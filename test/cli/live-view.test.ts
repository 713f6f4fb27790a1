/**
 * `cairn run` on a real terminal: tmux's (a terminal emulator with a scrollback, read back as
 * the user would see it once the run is over), and `script`'s (a terminal whose bytes are read
 * as written). The live view keeps what a task prints itself, fits a small terminal, and
 * `TERM=dumb` gets plain lines without colours.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv } from "../cache/helpers.ts";
import { fixture, tmp } from "./helpers.ts";

const run = promisify(execFile);
const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/**
 * `cairn ...args` in a `cols`×`rows` tmux window, in a fresh folder; once it has exited, the
 * whole window (its scrollback and its screen, wrapped lines joined) and the exit code.
 */
async function onTerminal(args: string[], cols: number, rows: number): Promise<{ screen: string; code: number }> {
  const cwd = await tmp("cairn-live-");
  const socket = join(cwd, "tmux.sock");
  const tmux = (...a: string[]) => run("tmux", ["-S", socket, "-f", "/dev/null", ...a], { env: childEnv(), cwd });
  const command = `${[process.execPath, cairnBin, ...args].map(quote).join(" ")}; echo $? > code; tmux -S ${quote(socket)} wait-for -S done; sleep 600`;
  await tmux("new-session", "-d", "-x", String(cols), "-y", String(rows), command);
  try {
    await tmux("set-option", "-g", "history-limit", "10000");
    await tmux("wait-for", "done");
    const { stdout } = await tmux("capture-pane", "-p", "-J", "-S", "-");
    return { screen: stdout, code: Number(await readFile(join(cwd, "code"), "utf8")) };
  } finally {
    await tmux("kill-server").catch(() => {});
  }
}

const count = (text: string, line: string) => text.split("\n").filter((l) => l === line).length;

describe("the live view", () => {
  it("keeps what a task prints itself (console.log, console.error, a line in pieces) on the screen, once each, above the view", async () => {
    const { screen, code } = await onTerminal(["run", fixture("prints-itself.flow.ts"), "--no-cache"], 80, 24);
    expect(code, screen).toBe(1);
    for (const i of [0, 1, 2, 3]) {
      for (const k of [0, 1, 2]) {
        expect(count(screen, `task ${i} out ${k}`), screen).toBe(1);
        expect(count(screen, `task ${i} err ${k}`), screen).toBe(1);
      }
      expect(count(screen, `task ${i} in two pieces`), screen).toBe(1);
    }
    // No frame of the view is left behind: it is erased at the end, before the summary.
    expect(screen).not.toMatch(/\d+ done · \d+ running/);
    // A task's error: its lines after the first carry the task's prefix, so none passes for a line of Cairn's own.
    expect(screen).toContain("boom\n[fail] 00:00:00 ✓ succeeded  notreal\n[fail]   ✓ succeeded notreal\n");
    expect(screen).not.toMatch(/^(00:00:00 | {2})?✓ succeeded +notreal/m);
  }, 60_000);

  it("fits a small terminal: lines cut to its width, no more lines than its height, no stale copies in the scrollback", async () => {
    const { screen, code } = await onTerminal(["run", fixture("many-long-ids.flow.ts"), "--no-cache", "-c", "16"], 40, 12);
    expect(code, screen).toBe(0);
    expect(screen).not.toMatch(/done · \d+ running/);
    expect(screen).not.toMatch(/▶ running/);
    for (let i = 0; i < 16; i++) {
      const id = `train_segment_${String(i).padStart(2, "0")}_model`;
      expect(count(screen, `[${id}] item ${i} started`), screen).toBe(1);
      expect(screen.split("\n").filter((l) => l.startsWith(`  ✓ succeeded ${id}`)), screen).toHaveLength(1);
    }
  }, 60_000);
});

/**
 * `cairn ...args` under `script`: on a terminal, its bytes as written (every frame of the live
 * view). `size`: the terminal's, `[rows, cols]`; without it script's terminal has none (0×0), on
 * which the live view draws no block.
 */
async function bytesOnTerminal(args: string[], env: NodeJS.ProcessEnv, size?: readonly [rows: number, cols: number]): Promise<string> {
  const cwd = await tmp("cairn-dumb-");
  const command = (size ? `stty rows ${size[0]} cols ${size[1]}; ` : "") + [process.execPath, cairnBin, ...args].map(quote).join(" ");
  const { stdout } = await run("script", ["-qfec", command, "/dev/null"], { cwd, env: childEnv(env) });
  return stdout;
}

describe("the live view's total", () => {
  it("of a flow with a map: the flow's tasks and `+` until the map's list is known, then its items counted in", async () => {
    const bytes = await bytesOnTerminal(["run", fixture("progress-map.flow.ts"), "--no-cache"], { TERM: "xterm" }, [24, 100]);
    expect(bytes).toContain("Flow succeeded");
    // gen, sq and total; sq's items unknown while gen runs. Before: "0 done · 1 running", no total.
    expect(bytes).toMatch(/progress-map {2}0\/3\+ done · 1 running/);
    // Once gen has made the list, its 12 items too, up to the last frame's.
    expect(bytes).toMatch(/progress-map {2}\d+\/15 done · \d+ running/);
    expect(bytes).toMatch(/progress-map {2}15\/15 done · 0 running/);
    expect(bytes).not.toMatch(/progress-map {2}\d+ done/);
  }, 60_000);
});

describe("TERM=dumb", () => {
  it("gets plain lines without colours on a terminal; FORCE_COLOR still turns them on", async () => {
    const args = ["run", fixture("../../fixtures/ok.flow.ts"), "--no-cache"];
    const dumb = await bytesOnTerminal(args, { TERM: "dumb", NO_COLOR: undefined });
    expect(dumb).toContain("Flow succeeded");
    expect(dumb).not.toContain("\u001b[");
    // On a terminal a line is stamped with the time of day; off one, with the date too (test/cli/unattended.test.ts).
    expect(dumb).toMatch(/^\d\d:\d\d:\d\d ▶ running +double\r?$/m);
    const forced = await bytesOnTerminal(args, { TERM: "dumb", NO_COLOR: undefined, FORCE_COLOR: "1" });
    expect(forced).toContain("\u001b[32msucceeded");
    // Another terminal gets them, as before.
    expect(await bytesOnTerminal(args, { TERM: "xterm", NO_COLOR: undefined })).toContain("\u001b[32msucceeded");
  }, 60_000);
});
