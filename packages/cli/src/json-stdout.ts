/**
 * Under JSON output (`--json`, `graph --format json`), stdout is the JSON alone, for a program
 * to parse: what the user's code writes there itself (a flow file's top-level `console.log`, its
 * `build()`, an `--import` module, a function task) would break it. From before any of that code
 * loads until the command ends, the process's stdout writes go to stderr; the command writes its
 * JSON through the stream this hands back, which still reaches stdout. Afterwards process.stdout
 * writes there again: an app that embeds cli() goes on printing. The diversion is the process's,
 * as process.stdout is: commands that overlap in one app share it.
 */
import type { Writable } from "node:stream";

/** process.stdout diverted to stderr while a command prints JSON (see `holdStdoutForJson`). */
export interface HeldStdout {
  /** The stream the command writes its JSON to: stdout itself, not diverted. */
  stdout: Writable;
  /** Gives process.stdout its own write back once no other JSON command holds it; a write put there meanwhile by someone else stays. */
  restore(): void;
}

/**
 * The diversion of process.stdout the JSON commands under way share: cli() calls in one app can
 * overlap, and a second command that took process.stdout.write then would take the first's
 * diverted write (its JSON on stderr) and, ending after the first, put that back for good.
 * Made by the first of them, with the write process.stdout had then; undone by the last.
 */
interface Diversion {
  /** process.stdout's write before the diversion, bound to it: where the JSON goes. */
  readonly write: typeof process.stdout.write;
  /** Whether that write was process.stdout's own property (an app's), not its prototype's. */
  readonly hadOwn: boolean;
  /** That write unbound, put back as it was. */
  readonly own: typeof process.stdout.write;
  /** The write put on process.stdout, to `stderr` of the command that made it. */
  readonly diverted: typeof process.stdout.write;
  /** The commands holding it. */
  holders: number;
}

let diversion: Diversion | undefined;

/**
 * `stream`'s write, not diverted: process.stdout's from before a JSON command diverted it (see
 * `holdStdoutForJson`), for output that must reach stdout whenever it is written.
 */
export function undivertedWrite(stream: Writable): (text: string) => boolean {
  if (stream === process.stdout && diversion !== undefined) return diversion.write as (text: string) => boolean;
  return stream.write.bind(stream) as (text: string) => boolean;
}

/**
 * Diverts the process's stdout writes to `stderr`, when `stdout` (the command's) is the
 * process's: a stream an app gave cli() gets nothing the user's code prints, so it is left as is.
 * Commands that overlap share one diversion (the first one's `stderr` gets the prints), and
 * process.stdout gets its write back when the last of them restores.
 * @example
 * const held = holdStdoutForJson(process.stdout, process.stderr);
 * try { console.log("noise"); held.stdout.write("{}\n"); } finally { held.restore(); } // "noise" on stderr, "{}" on stdout
 */
export function holdStdoutForJson(stdout: Writable, stderr: Writable): HeldStdout {
  const real = process.stdout;
  if (stdout !== real || stderr === real) return { stdout, restore: () => {} };
  if (diversion === undefined) {
    const own = real.write;
    const diverted = stderr.write.bind(stderr) as typeof real.write;
    diversion = { write: own.bind(real) as typeof real.write, hadOwn: Object.hasOwn(real, "write"), own, diverted, holders: 0 };
    real.write = diverted;
  }
  const held = diversion;
  held.holders++;
  // The same stream (fd, isTTY, events) with its own write: the command's output and its checks
  // of where stdout goes are those of the real one, its bytes not diverted.
  const json = new Proxy(real, {
    get(target, property) {
      if (property === "write") return held.write;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  let restored = false;
  return {
    stdout: json,
    restore() {
      if (restored) return;
      restored = true;
      if (--held.holders > 0) return;
      diversion = undefined;
      if (real.write !== held.diverted) return;
      if (held.hadOwn) real.write = held.own;
      else Reflect.deleteProperty(real, "write");
    },
  };
}

/**
 * Whether `cairn COMMAND ...args` prints JSON on stdout: `--json` (each command that has it),
 * or `graph`'s `--format json` / `-f json`; read before its flags are parsed, as the flow loads
 * after that. Args after `--` are no flags.
 */
export function printsJson(command: string | undefined, args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const flags = end < 0 ? args : args.slice(0, end);
  if (flags.includes("--json")) return true;
  if (command !== "graph") return false;
  return flags.some((arg, i) => arg === "--format=json" || arg === "-fjson" || ((arg === "--format" || arg === "-f") && flags[i + 1] === "json"));
}
