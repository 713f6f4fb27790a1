/**
 * The module format tsx compiles a file to: a `.mts`/`.mjs` file is an ES module, a
 * `.cts`/`.cjs` file CommonJS, and any other the format of its package (`"type": "module"` in
 * the nearest package.json, else CommonJS, as Node has it). tsx turns each imported name of a
 * CommonJS module into `import_<module>.<name>`, so a function's text, and with it its code
 * fingerprint, differs by format: a function read from a compiled app is printed in the format
 * tsx gives its source, so that both have the same text. Read anew on each call: the
 * package.json may change between runs.
 */
import { readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";

export type ModuleFormat = "esm" | "cjs";

export function tsxFormat(file: string): ModuleFormat {
  const ext = extname(file);
  if (ext === ".mts" || ext === ".mjs") return "esm";
  if (ext === ".cts" || ext === ".cjs") return "cjs";
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const type = packageType(join(dir, "package.json"));
    if (type !== null) return type === "module" ? "esm" : "cjs";
    if (dirname(dir) === dir) return "cjs";
  }
}

/** The `type` of a package.json (undefined when it sets none); null when there is no such file. */
function packageType(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null; // no package.json here: the one above decides
  }
  try {
    return (JSON.parse(text) as { type?: unknown } | null)?.type;
  } catch {
    return undefined; // Node fails to load a module under it first; CommonJS as Node's default
  }
}
