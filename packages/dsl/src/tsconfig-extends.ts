/**
 * A tsconfig.json as tsx applies it: with what it `extends` merged in. esbuild's transform reads
 * a tsconfig's text (`tsconfigRaw`) but not the files it extends, while tsx, `cairn run` and tsc
 * follow them; a setting of a base (`verbatimModuleSyntax` in `@tsconfig/node20` or a
 * tsconfig.base.json) would otherwise be missed by the code analysis, which then reads modules
 * otherwise than tsx and tsc compile them. Reading files is the caller's (`read`).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

type Read = (path: string) => Promise<string | undefined>;
type Options = Record<string, unknown>;

/** How deep `extends` is followed: a chain longer than this (or a cycle) counts as far as it went. */
const MAX_DEPTH = 16;

/**
 * `text` (the tsconfig.json at `file`) with the compilerOptions of what it extends merged in, as
 * TypeScript merges them (each base in order, then its own); `text` as it is when it extends
 * nothing, or cannot be read as JSON with comments.
 */
export async function withExtended(file: string, text: string, read: Read): Promise<string> {
  const own = parseConfig(text);
  if (!own || extendsOf(own, file).length === 0) return text;
  return JSON.stringify({ compilerOptions: await optionsOf(file, own, read, 0) });
}

async function optionsOf(file: string, config: Options, read: Read, depth: number): Promise<Options> {
  let merged: Options = {};
  if (depth < MAX_DEPTH) {
    for (const base of extendsOf(config, file)) {
      const text = await read(base);
      const parsed = text === undefined ? undefined : parseConfig(text);
      if (parsed) merged = { ...merged, ...(await optionsOf(base, parsed, read, depth + 1)) };
    }
  }
  const own = config.compilerOptions;
  return { ...merged, ...(own && typeof own === "object" ? (own as Options) : {}) };
}

/** The files a config extends, in order: paths as TypeScript resolves them; those it cannot find are left out. */
function extendsOf(config: Options, file: string): string[] {
  const named = Array.isArray(config.extends) ? config.extends : [config.extends];
  return named.filter((e): e is string => typeof e === "string").flatMap((name) => extendedFile(dirname(file), name) ?? []);
}

/** A path (`./tsconfig.base.json`, `.json` added when missing) or a package's config (`@tsconfig/node20`, `@tsconfig/node20/tsconfig.json`). */
function extendedFile(base: string, name: string): string | undefined {
  if (/^\.{1,2}(?:\/|$)|^\//.test(name)) {
    const target = resolve(base, name);
    return existsSync(target) || target.endsWith(".json") ? target : `${target}.json`;
  }
  const pkg = packageName(name);
  if (!pkg) return undefined;
  for (let d = base; ; d = dirname(d)) {
    const root = join(d, "node_modules", pkg);
    if (existsSync(root)) return packageConfig(root, name.slice(pkg.length));
    if (dirname(d) === d) return undefined;
  }
}

/** In a package: a subpath as written, with `.json` added, or a folder's tsconfig.json; none, its package.json's `tsconfig` field, else tsconfig.json. */
function packageConfig(root: string, subpath: string): string | undefined {
  if (subpath) {
    const target = join(root, subpath);
    return [target, `${target}.json`, join(target, "tsconfig.json")].find((f) => f.endsWith(".json") && existsSync(f));
  }
  try {
    const field = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { tsconfig?: unknown }).tsconfig;
    if (typeof field === "string") return resolve(root, field);
  } catch {
    // no package.json, or not JSON: its tsconfig.json
  }
  return join(root, "tsconfig.json");
}

function packageName(specifier: string): string | undefined {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? (parts.length > 1 ? `${parts[0]}/${parts[1]}` : undefined) : parts[0];
}

/** JSON with comments and trailing commas, as TypeScript reads a tsconfig; undefined when it is not an object. */
function parseConfig(text: string): Options | undefined {
  try {
    const json = text.replace(/\/\*[\s\S]*?\*\/|("(?:\\.|[^"\\])*")|\/\/[^\n]*/g, (_, str: string | undefined) => str ?? "").replace(/,(\s*[}\]])/g, "$1");
    const parsed: unknown = JSON.parse(json);
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Options) : undefined;
  } catch {
    return undefined;
  }
}
