#!/usr/bin/env node
// The `cairn` command. It runs from Cairn's bundle (./dist.mjs builds it on first use and when
// a source changes) and compiles the flow file with the esbuild tsx uses: no loader thread, so
// a cached re-run is over in a fraction of a second. With CAIRN_LOADER=tsx, when the bundle
// cannot be built, or for a flow that imports Cairn's internal modules, it registers tsx and
// runs from the TypeScript sources as before.
const args = process.argv.slice(2);

async function fromBundle() {
  if (process.env.CAIRN_LOADER === "tsx") return undefined;
  const { ensureDist } = await import("./dist.mjs");
  let dist;
  try {
    dist = await ensureDist();
  } catch (error) {
    process.stderr.write(`cairn: could not build Cairn's bundle (${error instanceof Error ? error.message : String(error)}); running from sources through tsx.\n`);
    return undefined;
  }
  const { main, importCompiledFlow, NeedsTsxError } = await import(dist.files.cli);
  try {
    return await main(args, { importFlow: (path) => importCompiledFlow(path, dist) });
  } catch (error) {
    if (error instanceof NeedsTsxError) return undefined;
    throw error;
  }
}

async function fromSources() {
  const { register } = await import("tsx/esm/api");
  register();
  const { main } = await import("../src/cli/main.ts");
  return main(args);
}

process.exitCode = (await fromBundle()) ?? (await fromSources());
