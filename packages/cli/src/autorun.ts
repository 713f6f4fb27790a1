/**
 * `tsx flow.ts` runs the file's default-exported flow: when a flow is declared or built by the
 * entry-point module, the CLI's `run` command is started for that file once the
 * module has finished loading, if its default export is a flow, or a flow declared and not
 * built (`export default flow("x")`), which `run` refuses, saying so. Importing the file from
 * an app or from `cairn run` does nothing, and neither does a file that starts a run of
 * its own, nor an app's entry module that builds flows without default-exporting one.
 *
 * Importing this module registers the behaviour with the DSL; `cairn-dag` imports it, so a
 * flow file that imports `cairn-dag` runs itself under tsx.
 */
import { realpathSync } from "node:fs";
import { sep } from "node:path";
import { pathToFileURL } from "node:url";
import { booleanFromEnv } from "@cairn/core";
import { addFlowHooks, flowBuilderName, isFlow } from "@cairn/dsl";
import { EXIT } from "./exit.ts";

let scheduled = false;
let runStarted = false;

addFlowHooks({
  runStarted: () => {
    runStarted = true;
  },
  declared: (caller) => scheduleAutorun(caller),
  built: (_flow, caller) => scheduleAutorun(caller),
});

/** A file Node or tsx runs as a module, outside any package: where a flow file may re-export a flow built elsewhere. */
const PROJECT_MODULE = /\.(?:[cm]?ts|tsx|[cm]?js|jsx)$/;

/**
 * Schedules the autorun when the module that built a flow is the entry point, or may
 * default-export it from another module (`export { train as default } from "./flows.ts"`): an
 * entry module of the project's own, not a tool's (a test runner's, Cairn's bin), which a
 * look at its default export then tells apart.
 */
function scheduleAutorun(caller: () => string | undefined): void {
  if (scheduled) return;
  const entry = realPath(process.argv[1]);
  if (!entry) return;
  // The stack is read only here, once a flow could still be run on its own.
  if (realPath(caller()) !== entry && (!PROJECT_MODULE.test(entry) || entry.includes(`${sep}node_modules${sep}`) || isCairnBin(entry))) return;
  scheduled = true;
  // Only "1" stopped the run before: `CAIRN_NO_AUTORUN=true` ran the flow, side effects and all.
  // A value that cannot be read runs nothing: the variable exists to stop a run.
  try {
    if (booleanFromEnv(process.env, "CAIRN_NO_AUTORUN")) return;
  } catch (error) {
    process.stderr.write(`cairn: ${(error as Error).name}: ${(error as Error).message} The flow was not run.\n`);
    process.exitCode = EXIT.usage;
    return;
  }
  setImmediate(() => {
    void (async () => {
      // Waits for the module to finish evaluating (top-level await included): a script that
      // starts its own run is then known to have done so, and is left alone.
      const mod = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
      if (runStarted) return;
      // An app's entry module that builds a flow to run later (a server) is no flow file; one that
      // default-exports a flow it never built is, and `run` says what is missing, as `cairn run` does.
      const { unwrapCommonJs } = await import("./load-flow.ts");
      const exported = unwrapCommonJs(mod.default);
      if (!isFlow(exported) && flowBuilderName(exported) === undefined) return;
      const { main } = await import("./main.ts");
      // The flow file is the program here: Ctrl-C cancels its run, as under `cairn run`.
      process.exitCode = await main(["run", entry, ...process.argv.slice(2)], { module: mod, handleSignals: true });
    })();
  });
}

/** Cairn's own launcher (`bin/cairn.mjs` of @cairn/cli or cairn-dag), which runs flows itself. */
function isCairnBin(file: string): boolean {
  return file.endsWith(`${sep}bin${sep}cairn.mjs`);
}

function realPath(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}
