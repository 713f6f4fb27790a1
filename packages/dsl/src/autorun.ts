import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { callerFile } from "./declared-path.ts";

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
  if (!entry || buildCaller() !== entry) return;
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

/** The module that called build(), by its real path. */
function buildCaller(): string | undefined {
  const file = callerFile();
  if (file === undefined) return undefined;
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}
