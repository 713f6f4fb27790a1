/**
 * The module format tsx compiles a file to: a `.mts`/`.mjs` file is an ES module, a
 * `.cts`/`.cjs` file CommonJS, and any other the format of its package (`"type": "module"` in
 * the nearest package.json, else CommonJS, as Node has it). tsx turns each imported name of a
 * CommonJS module into `import_<module>.<name>`, so a function's text, and with it its code
 * fingerprint, differs by format: a function read from a compiled app is printed in the format
 * tsx gives its source, so that both have the same text. The CLI asks the same (moduleFormatOf)
 * to send a CommonJS flow to tsx. Read anew on each call: the package.json may change between
 * runs.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";

export type ModuleFormat = "esm" | "cjs";

export function tsxFormat(file: string): ModuleFormat {
  return moduleFormatOf(file).format;
}

/** The format tsx compiles `file` to, and why, in words for a message (`/app/package.json says no "type", not "type": "module"`). */
export function moduleFormatOf(file: string): { format: ModuleFormat; why: string } {
  const ext = extname(file);
  if (ext === ".mts" || ext === ".mjs") return { format: "esm", why: `a ${ext} file is an ES module` };
  if (ext === ".cts" || ext === ".cjs") return { format: "cjs", why: `a ${ext} file is CommonJS` };
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const path = join(dir, "package.json");
    const type = packageType(path);
    if (type === INVALID) return { format: "cjs", why: `${path} is not valid JSON (Node refuses to load a module under it; CommonJS is its default)` };
    if (type !== null) return type === "module" ? { format: "esm", why: `${path} says "type": "module"` } : { format: "cjs", why: `${path} says ${type === undefined ? `no "type"` : `"type": ${JSON.stringify(type)}`}, not "type": "module"` };
    if (dirname(dir) === dir) return { format: "cjs", why: `no package.json is above it to say "type": "module"` };
  }
}

const INVALID = Symbol("invalid package.json");

/** The `type` of a package.json (undefined when it sets none); null when there is no such file, or it cannot be read (as Node skips it); INVALID when it is no JSON object. */
function packageType(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null; // no package.json here (or one Node cannot read either): the one above decides
  }
  try {
    return (JSON.parse(text) as { type?: unknown } | null)?.type;
  } catch {
    return INVALID;
  }
}
