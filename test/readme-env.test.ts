/**
 * The README's promise to name every environment variable Cairn reads (README, "Environment
 * variables"): each variable a package's source, bin or Python helper reads is named in the
 * README, so that a new one cannot land undocumented.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { repo } from "./cli/helpers.ts";

/** The shapes a read takes in Cairn's code: `env.NAME`, `env["NAME"]`, `readNumber(env, "NAME")`, `"NAME" in env`, Python's `os.environ.get("NAME")`, `_env("NAME")`. */
const READS = [
  /\benv\??\.([A-Z][A-Z0-9_]+)\b(?!\s*=[^=])/g,
  /\benv\[\s*"([A-Z][A-Z0-9_]+)"\s*\](?!\s*=[^=])/g,
  /\((?:env|process\.env), "([A-Z][A-Z0-9_]+)"/g,
  /"([A-Z][A-Z0-9_]+)" in (?:io\.)?env\b/g,
  /environ(?:\.get)?[([]\s*"([A-Z][A-Z0-9_]+)"/g,
  /\b_env\("([A-Z][A-Z0-9_]+)"\)/g,
];

/** Source files of the packages (not tests, not builds): src/, bin/ and python/. */
function packageSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // a package without this folder
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!["node_modules", "dist", "__pycache__"].includes(e.name)) walk(p);
      } else if (/\.(ts|mjs|py)$/.test(e.name) && !/\.test(-d)?\.ts$/.test(e.name)) files.push(p);
    }
  };
  for (const pkg of readdirSync(join(repo, "packages"))) for (const sub of ["src", "bin", "python"]) walk(join(repo, "packages", pkg, sub));
  return files;
}

/** Each variable read, with the first file that reads it; comments (JSDoc examples) do not count. */
function variablesRead(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of packageSources()) {
    const code = readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => !/^\s*(\*|\/\*|\/\/|#)/.test(line))
      .join("\n");
    for (const re of READS) for (const m of code.matchAll(re)) if (!found.has(m[1]!)) found.set(m[1]!, relative(repo, file));
  }
  return found;
}

describe("the README's environment variables", () => {
  it("name every variable the packages read", () => {
    const read = variablesRead();
    // The scan finds reads of each shape (a regex that matched nothing would pass anything).
    for (const name of ["MLFLOW_TRACKING_URI", "CAIRN_PYTHON", "CAIRN_OUTPUTS", "NO_COLOR", "CAIRN_LOADER"]) expect(read.has(name), name).toBe(true);
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    const missing = [...read].filter(([name]) => !readme.includes(`\`${name}`)).map(([name, file]) => `${name} (read in ${file})`);
    expect(missing, "variables read but not named in README.md as `NAME`").toEqual([]);
  });
});
