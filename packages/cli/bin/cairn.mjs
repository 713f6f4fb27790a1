#!/usr/bin/env node
// The `cairn` command. Installed from npm it runs from the package's bundled dist/bundle/; in
// Cairn's own workspace it runs from a bundle of the TypeScript sources (./bundle.mjs builds
// it on first use and when a source changes). Either way it compiles the flow file with the
// esbuild tsx uses: no loader thread, so a cached re-run is over in a fraction of a second.
// With CAIRN_LOADER=tsx, when the bundle cannot be built, or for a flow that needs tsx
// (JavaScript flow files, Cairn's internal modules), it registers tsx and runs as before.
import { readFileSync } from "node:fs";
import { sep } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);

/**
 * Ctrl-C (or SIGTERM, SIGHUP) while `cairn run` still starts: Cairn and the flow file loading,
 * before the run listens for them itself. Node would end the process without a word; nothing has
 * been run, recorded or written yet, so it says so in one line and exits 130 (interrupted) at once;
 * under `--json` that line is also the one `error` event on stdout, as for any error that ends
 * the command before its run (main.ts, errorEventWriter), so that a reader of the events is not
 * left with an empty stream. The run takes the signals over (`startingSignalHandler`) once it can
 * cancel cleanly.
 */
// main.ts's CANCEL_SIGNALS, copied: a source may not import bin/ (test/architecture.test.ts keeps the two equal).
const STARTING_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];
// Flags end at `--`, as main.ts's flagGiven reads them.
const flags = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
// Taken now: under --json the run's reporter later sends process.stdout's writes to stderr.
// `--json=yes` too, as main.ts's jsonAsked reads it: refused later, but its user reads stdout for events.
const writeEvent = args[0] === "run" && flags.some((arg) => arg === "--json" || arg.startsWith("--json=")) ? process.stdout.write.bind(process.stdout) : undefined;
function cancelledWhileStarting(signal) {
  const said = `${signal}: cancelled before the run started; nothing was run or recorded.`;
  try {
    writeEvent?.(`${JSON.stringify({ type: "error", exitCode: 130, error: { name: "CancelledError", message: said }, time: Date.now() })}\n`);
  } catch {
    // A reader that went away takes no more output; the exit code says it.
  }
  try {
    process.stderr.write(`cairn: ${said}\n`);
  } catch {
    // A terminal that hung up takes no more output; the exit code says it.
  }
  process.exit(130);
}
if (args[0] === "run") for (const signal of STARTING_SIGNALS) process.on(signal, cancelledWhileStarting);
/** What main() is told of the process: it acts as the `cairn` command (see CliIo). */
const asCommand = { handleSignals: true, startingSignalHandler: cancelledWhileStarting };
/** An installed copy lives in node_modules and ships dist/, not sources; nothing may be written there. */
const installed = fileURLToPath(import.meta.url).split(sep).includes("node_modules");

/** What the flow compiler needs to know of the Cairn it runs in (see src/cli/compile-flow.ts). */
async function engine() {
  if (process.env.CAIRN_LOADER === "tsx") return undefined;
  if (installed) {
    const { loadEsbuild } = await import("./esbuild.mjs");
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    // The flow's imports of Cairn resolve through node_modules to the same dist/ files as ours.
    return { cli: "../dist/bundle/main.js", bundle: { id: `v${version}`, sources: {}, packageDirs: [], loadEsbuild } };
  }
  const { ensureBundle } = await import("./bundle.mjs");
  try {
    const bundle = await ensureBundle();
    return { cli: bundle.files.cli, bundle };
  } catch (error) {
    process.stderr.write(`cairn: could not build Cairn's bundle (${error instanceof Error ? error.message : String(error)}); running from sources through tsx.\n`);
    return undefined;
  }
}

async function compiled() {
  const found = await engine();
  if (!found) return undefined;
  const { main, importCompiledFlow, NeedsTsxError } = await import(found.cli);
  try {
    return await main(args, { ...asCommand, importFlow: (path) => importCompiledFlow(path, found.bundle) });
  } catch (error) {
    if (NeedsTsxError.is(error)) return undefined;
    throw error;
  }
}

async function throughTsx() {
  let hooks;
  try {
    // Both, as `tsx flow.ts` has them: a .ts file in a CommonJS package is loaded as CommonJS
    // (and may require the project's .js modules); with the ES module hooks alone Node
    // require()s the flow as an ES module from itself (ERR_REQUIRE_CYCLE_MODULE).
    hooks = await Promise.all([import("tsx/cjs/api"), import("tsx/esm/api")]);
  } catch {
    const { installTsxCommand } = await import("./esbuild.mjs");
    process.stderr.write(`cairn: this flow needs tsx (a JavaScript flow file, or CAIRN_LOADER=tsx), and tsx is not installed. Install it: ${installTsxCommand()}\n`);
    return 2;
  }
  for (const { register } of hooks) register();
  const { main } = await import(installed ? "../dist/bundle/main.js" : "../src/main.ts");
  return main(args, asCommand);
}

process.exitCode = (await compiled()) ?? (await throughTsx());
