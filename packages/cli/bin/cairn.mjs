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
    return await main(args, { importFlow: (path) => importCompiledFlow(path, found.bundle), handleSignals: true });
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
    process.stderr.write("cairn: this flow needs tsx (a JavaScript flow file, or CAIRN_LOADER=tsx), and tsx is not installed. Install it: npm install --save-dev tsx\n");
    return 2;
  }
  for (const { register } of hooks) register();
  const { main } = await import(installed ? "../dist/bundle/main.js" : "../src/main.ts");
  return main(args, { handleSignals: true });
}

process.exitCode = (await compiled()) ?? (await throughTsx());
