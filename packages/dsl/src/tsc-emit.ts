/**
 * What the project's own TypeScript compiler emits for a source file, with the options of the
 * tsconfig.json tsc found for it. A module tsc compiled differs from the source as esbuild strips
 * it wherever tsc shapes code otherwise (an enum, a namespace, parameter properties, decorators):
 * compared with tsc's own emit of the source instead, it is still known to be compiled from the
 * source as it is now. Pure but for loading `typescript` from the project and reading its configs.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as TypeScript from "typescript";
import { memo } from "./memo.ts";

type Ts = typeof TypeScript;

/** `typescript` as the sources in `dir` resolve it (the tsc that compiled them), or why it cannot be used; undefined when there is none. */
const compilers = new Map<string, Ts | Unusable>();

/** Why the project's TypeScript cannot say what it emits: one sentence's end, for a warning. */
export interface Unusable {
  unusable: string;
}

function typescriptFrom(dir: string): Ts | Unusable | undefined {
  let path: string;
  try {
    path = createRequire(join(dir, "noop.js")).resolve("typescript");
  } catch {
    return undefined; // no TypeScript installed where the sources are
  }
  return memo(compilers, path, () => {
    let ts: Ts;
    try {
      ts = createRequire(join(dir, "noop.js"))(path) as Ts;
    } catch (error) {
      return { unusable: `the \`typescript\` package at ${path} could not be loaded (${firstLine(error)})` };
    }
    return hasTranspileApi(ts) ? ts : { unusable: noTranspileApi(path, ts) };
  });
}

/** TypeScript 7 (the native compiler) exports only its `version` from its main entry: none of these. */
function hasTranspileApi(ts: Ts): boolean {
  return [ts?.transpileModule, ts?.findConfigFile, ts?.getParsedCommandLineOfConfigFile, ts?.getImpliedNodeFormatForFile].every((f) => typeof f === "function") && typeof ts.sys === "object";
}

function noTranspileApi(path: string, ts: Ts): string {
  const version = typeof ts?.version === "string" ? ts.version : "of unknown version";
  const major = Number(/^(\d+)\./.exec(version)?.[1] ?? 0);
  const what = `the \`typescript\` package at ${path} (${version}) has no \`transpileModule\``;
  return major >= 7 ? `TypeScript 7's compiler has no JavaScript API Cairn can use (${what})` : what;
}

function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error).split("\n")[0]!;
}

/** The options of the tsconfig.json nearest to `dir` (with what it extends), as tsc reads them; by config file, once per process. */
const optionsByConfig = new Map<string, TypeScript.CompilerOptions | undefined>();

function compilerOptions(ts: Ts, dir: string): TypeScript.CompilerOptions | undefined {
  const config = ts.findConfigFile(dir, ts.sys.fileExists);
  if (!config) return {};
  if (!optionsByConfig.has(config)) {
    // A config tsc cannot read: nothing to compare with (undefined).
    const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} };
    optionsByConfig.set(config, ts.getParsedCommandLineOfConfigFile(config, {}, host)?.options);
  }
  return optionsByConfig.get(config);
}

/**
 * The JavaScript the project's TypeScript emits for `source` (the text of `file`), each file on
 * its own (`transpileModule`, as `isolatedModules` has it); undefined when the project has no
 * TypeScript; `unusable` (why) when it has one that cannot say: a TypeScript without that API
 * (7), a tsconfig tsc cannot read, a compiler that failed. Source maps are left out: a compiled
 * module's comment naming its map is no code.
 */
export function tscEmit(file: string, source: string): string | Unusable | undefined {
  const ts = typescriptFrom(dirname(file));
  if (ts === undefined || "unusable" in ts) return ts;
  try {
    const options = compilerOptions(ts, dirname(file));
    if (!options) return { unusable: `tsc cannot read the tsconfig.json nearest to ${file}` };
    const emitOptions = { ...options, module: moduleFor(ts, file, options), sourceMap: false, inlineSourceMap: false, declaration: false, declarationMap: false };
    return ts.transpileModule(source, { compilerOptions: emitOptions, fileName: file }).outputText;
  } catch (error) {
    return { unusable: `the project's TypeScript (${String(ts.version)}) failed to compile ${file} (${firstLine(error)})` };
  }
}

/**
 * The module kind tsc emits `file` as. Under `module: node16` or `nodenext` that is the file's
 * own format (`.mts`, `.cts`, or the `type` of its package.json), which transpileModule, reading
 * no other file, cannot tell: it is given as ES modules or CommonJS.
 */
function moduleFor(ts: Ts, file: string, options: TypeScript.CompilerOptions): TypeScript.ModuleKind | undefined {
  const kind = options.module;
  if (kind === undefined || kind < ts.ModuleKind.Node16 || kind > ts.ModuleKind.NodeNext) return kind;
  return ts.getImpliedNodeFormatForFile(file as TypeScript.Path, undefined, ts.sys, options) === ts.ModuleKind.ESNext ? ts.ModuleKind.ESNext : ts.ModuleKind.CommonJS;
}
