/**
 * The layout's rules, checked on every `pnpm test` (so CI fails when one is broken):
 * no import cycle among the packages' modules (madge), packages depend on each other in one
 * direction only (cairn → cli → report/mlflow → …), and no package reaches into another's files or its own bin/.
 */
import { readFileSync, readdirSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative, resolve } from "node:path";
import madge from "madge";
import { describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..");
const PACKAGES = ["cache", "core", "dsl", "process", "mlflow", "report", "worker", "cli", "cairn"] as const;
/** Which workspace packages each package may import: the data flows one way. */
const ALLOWED: Record<(typeof PACKAGES)[number], string[]> = {
  cache: [],
  core: ["cache"],
  dsl: ["cache", "core"],
  process: ["cache", "core", "dsl"],
  mlflow: ["cache", "core", "dsl", "process"],
  // The report reads what a run recorded through core's Tracker contract: no kind, no MLflow client.
  report: ["cache", "core"],
  // The queue runs tasks through core's pipeline; it never loads the CLI.
  worker: ["cache", "core"],
  cli: ["cache", "core", "dsl", "process", "mlflow", "report", "worker"],
  // What a user imports, its subpaths included (cairn-dag/report, cairn-dag/testing): the top of the layers.
  cairn: ["cli", "core", "dsl", "process", "mlflow", "report", "worker"],
};

function sources(pkg: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/\.ts$/.test(entry.name) && !/\.test(-d)?\.ts$/.test(entry.name)) out.push(p);
    }
  };
  walk(join(repo, "packages", pkg, "src"));
  return out;
}

const specifiers = (file: string) =>
  [...readFileSync(file, "utf8").matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s*["']([^"']+)["']/g)].map((m) => (m[1] ?? m[2] ?? m[3])!);

describe("the packages' layout", () => {
  it("has no import cycle", async () => {
    const graph = await madge(PACKAGES.map((p) => join(repo, "packages", p, "src")), {
      fileExtensions: ["ts"],
      tsConfig: join(repo, "tsconfig.json"),
      excludeRegExp: [/\.test(-d)?\.ts$/],
    });
    expect(graph.circular()).toEqual([]);
    expect(Object.keys(graph.obj()).length).toBeGreaterThan(80); // it read the sources
  }, 60_000);

  it("imports workspace packages in one direction, by their names, and never a bin/ file", () => {
    const wrong: string[] = [];
    for (const pkg of PACKAGES) {
      for (const file of sources(pkg)) {
        for (const spec of specifiers(file)) {
          const where = `${relative(repo, file)} imports ${spec}`;
          const named = /^@cairn\/([a-z]+)/.exec(spec)?.[1] ?? (spec === "cairn-dag" ? "cairn" : undefined);
          if (named && named !== pkg && !ALLOWED[pkg].includes(named)) wrong.push(`${where}: ${pkg} may import only ${ALLOWED[pkg].join(", ") || "no workspace package"}`);
          if (/^@cairn\/[a-z]+\/(src|dist)\//.test(spec)) wrong.push(`${where}: import the package's entry, not its files`);
          if (spec.startsWith(".") && /(^|\/)(\.\.\/)+(bin|test)\//.test(spec)) wrong.push(`${where}: sources do not import bin/ or test/`);
          if (spec.startsWith("..") && !resolve(file, "..", spec).startsWith(join(repo, "packages", pkg) + "/")) wrong.push(`${where}: a relative import out of its package`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it("declares every package its published modules import; a test helper's vitest as an optional peer", () => {
    const missing: string[] = [];
    for (const pkg of PACKAGES) {
      const manifest = JSON.parse(readFileSync(join(repo, "packages", pkg, "package.json"), "utf8")) as {
        name: string;
        dependencies?: Record<string, string>;
        peerDependencies?: Record<string, string>;
        peerDependenciesMeta?: Record<string, { optional?: boolean }>;
      };
      const declared = new Set([manifest.name, ...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]);
      for (const file of sources(pkg)) {
        // A type-only import (esbuild's types, where its copy in tsx is used) loads nothing.
        const typeOnly = new Set([...readFileSync(file, "utf8").matchAll(/(?:^|\n)\s*import\s+type\b[^'"]*?from\s*["']([^"']+)["']/g)].map((m) => m[1]!));
        for (const spec of specifiers(file)) {
          if (spec.startsWith(".") || spec.startsWith("node:") || isBuiltin(spec) || typeOnly.has(spec)) continue;
          const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
          const where = `${relative(repo, file)} imports ${spec}`;
          if (!declared.has(name)) missing.push(`${where}: ${manifest.name} does not declare ${name}`);
          // @cairn/core/testing loads vitest, which a project that runs no tracker suite never installs.
          else if (name === "vitest" && (manifest.peerDependencies?.vitest === undefined || manifest.peerDependenciesMeta?.vitest?.optional !== true)) {
            missing.push(`${where}: ${manifest.name} declares vitest, but not as an optional peer dependency`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it("declares no registry package that none of its modules imports", () => {
    // An unused one is installed with every copy of the package (p-queue stayed in core's after the
    // scheduler's slots replaced it). Workspace packages are the layering's concern, above.
    const unused: string[] = [];
    for (const pkg of PACKAGES) {
      const manifest = JSON.parse(readFileSync(join(repo, "packages", pkg, "package.json"), "utf8")) as { name: string; dependencies?: Record<string, string> };
      const imported = new Set(
        sources(pkg).flatMap((file) => specifiers(file).map((spec) => (spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!))),
      );
      for (const [name, version] of Object.entries(manifest.dependencies ?? {})) if (!version.startsWith("workspace:") && !imported.has(name)) unused.push(`${manifest.name} declares ${name}, which none of packages/${pkg}/src imports`);
    }
    expect(unused).toEqual([]);
  });
});

describe("constants written once", () => {
  // A second copy drifts: the worker had its own MAX_TIMER_MS beside core's LONGEST_TIMER_MS.
  it("the longest Node timer is @cairn/core's LONGEST_TIMER_MS, written only in core/src/internal.ts", () => {
    const home = join(repo, "packages/core/src/internal.ts");
    const copies = PACKAGES.flatMap((pkg) => sources(pkg))
      .filter((file) => file !== home && /\b(2_?147_?483_?647|0x7fffffff)\b|2\s*\*\*\s*31/i.test(readFileSync(file, "utf8")))
      .map((file) => relative(repo, file));
    expect(copies).toEqual([]);
  });

  // Two copies, kept equal here: a source may not import bin/ (above), and the command's first
  // line cannot wait for Cairn's TypeScript to load before it listens (packages/cli/bin/cairn.mjs).
  it("the signals cairn run listens for while it starts are those that cancel the run", () => {
    const list = (file: string, name: string) => {
      const found = new RegExp(`const ${name} = (\\[[^\\]]*\\])`).exec(readFileSync(join(repo, file), "utf8"))?.[1];
      expect(found, `${name} in ${file}`).toBeDefined();
      return JSON.parse(found!) as string[];
    };
    const starting = list("packages/cli/bin/cairn.mjs", "STARTING_SIGNALS");
    expect(starting).toContain("SIGINT");
    expect(starting).toEqual(list("packages/cli/src/main.ts", "CANCEL_SIGNALS"));
  });
});
