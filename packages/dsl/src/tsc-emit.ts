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

type Ts = typeof TypeScript;

/** `typescript` as the sources in `dir` resolve it (the tsc that compiled them); undefined when there is none. */
const compilers = new Map<string, Ts | undefined>();

function typescriptFrom(dir: string): Ts | undefined {
  let path: string;
  try {
    path = createRequire(join(dir, "noop.js")).resolve("typescript");
  } catch {
    return undefined; // no TypeScript installed where the sources are
  }
  if (!compilers.has(path)) {
    try {
      compilers.set(path, createRequire(join(dir, "noop.js"))(path) as Ts);
    } catch {
      compilers.set(path, undefined);
    }
  }
  return compilers.get(path);
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
 * TypeScript, or its tsconfig cannot be read. Source maps are left out: a compiled module's
 * comment naming its map is no code.
 */
export function tscEmit(file: string, source: string): string | undefined {
  const ts = typescriptFrom(dirname(file));
  const options = ts && compilerOptions(ts, dirname(file));
  if (!ts || !options) return undefined;
  try {
    const compilerOptions = { ...options, module: moduleFor(ts, file, options), sourceMap: false, inlineSourceMap: false, declaration: false, declarationMap: false };
    return ts.transpileModule(source, { compilerOptions, fileName: file }).outputText;
  } catch {
    return undefined;
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
