import { realpathSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * `tsx flow.ts` runs the file's default-exported flow: when a flow is built by the
 * entry-point module, the CLI's `run` command is started for that file once the
 * module has finished loading. Importing the file from an app or from `cairn run`
 * does nothing, and neither does a file that starts a run of its own.
 */
let scheduled = false;
let runStarted = false;

/** Records that some flow run was started in this process, so autorun stays out of the way. */
export function noteRunStarted(): void {
  runStarted = true;
}

/** Called by `build()`; schedules the autorun when the caller is the entry point. */
export function scheduleAutorun(_flow: unknown): void {
  if (scheduled || process.env.CAIRN_NO_AUTORUN === "1") return;
  const entry = entryPoint();
  if (!entry || callerFile() !== entry) return;
  scheduled = true;
  setImmediate(() => {
    void (async () => {
      // Waits for the module to finish evaluating (top-level await included): a script that
      // starts its own run is then known to have done so, and is left alone.
      const mod = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
      if (runStarted) return;
      const { main } = await import("./cli/main.ts");
      process.exitCode = await main(["run", entry, ...process.argv.slice(2)], { module: mod });
    })();
  });
}

function entryPoint(): string | undefined {
  const arg = process.argv[1];
  if (!arg) return undefined;
  try {
    return realpathSync(arg);
  } catch {
    return undefined;
  }
}

/** The first file on the stack outside this package: the module that called build(). */
function callerFile(): string | undefined {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const stack = new Error().stack ?? "";
  for (const line of stack.split("\n").slice(1)) {
    const m = /(file:\/\/[^\s)]+|\/[^\s)(]+):\d+:\d+\)?$/.exec(line.trim());
    if (!m) continue;
    const file = m[1]!.startsWith("file://") ? fileURLToPath(m[1]!) : m[1]!;
    if (file.startsWith(here)) continue;
    try {
      return realpathSync(file);
    } catch {
      return file;
    }
  }
  return undefined;
}
