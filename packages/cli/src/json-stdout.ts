/**
 * Under JSON output (`--json`, `graph --format json`), stdout is the JSON alone, for a program
 * to parse: what the user's code writes there itself (a flow file's top-level `console.log`, its
 * `build()`, an `--import` module, a function task) would break it. From before any of that code
 * loads until the command ends, the process's stdout writes go to stderr; the command writes its
 * JSON through the stream this hands back, which still reaches stdout. Afterwards process.stdout
 * writes there again: an app that embeds cli() goes on printing.
 */
import type { Writable } from "node:stream";

/** process.stdout diverted to stderr while a command prints JSON (see `holdStdoutForJson`). */
export interface HeldStdout {
  /** The stream the command writes its JSON to: stdout itself, not diverted. */
  stdout: Writable;
  /** Gives process.stdout its own write back; a write put there meanwhile by someone else stays. */
  restore(): void;
}

/**
 * Diverts the process's stdout writes to `stderr`, when `stdout` (the command's) is the
 * process's: a stream an app gave cli() gets nothing the user's code prints, so it is left as is.
 * @example
 * const held = holdStdoutForJson(process.stdout, process.stderr);
 * try { console.log("noise"); held.stdout.write("{}\n"); } finally { held.restore(); } // "noise" on stderr, "{}" on stdout
 */
export function holdStdoutForJson(stdout: Writable, stderr: Writable): HeldStdout {
  const real = process.stdout;
  if (stdout !== real || stderr === real) return { stdout, restore: () => {} };
  const hadOwn = Object.hasOwn(real, "write");
  const own = real.write;
  const write = own.bind(real);
  const diverted = stderr.write.bind(stderr) as typeof real.write;
  real.write = diverted;
  // The same stream (fd, isTTY, events) with its own write: the command's output and its checks
  // of where stdout goes are those of the real one, its bytes not diverted.
  const json = new Proxy(real, {
    get(target, property) {
      if (property === "write") return write;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    stdout: json,
    restore() {
      if (real.write !== diverted) return;
      if (hadOwn) real.write = own;
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
