/**
 * `cairn init`: scaffolds a Cairn project in a folder (the working directory by default),
 * from one of the templates shipped in this package's templates/ folder: a flow file (and,
 * for the Python template, its steps), a strict tsconfig.json, `.gitignore` lines, and
 * package.json scripts and dependencies; then installs those with the package manager that
 * ran it. It never overwrites a file: when one of the files it would write exists, it
 * writes nothing and says which. package.json and .gitignore are merged into, not replaced:
 * keys and lines already there stay as they are.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { UsageError } from "./usage-error.ts";

const TEMPLATES_DIR = fileURLToPath(new URL("../templates/", import.meta.url));

/** The templates `--template` takes, with what each scaffolds. */
export const TEMPLATES = {
  ts: "a flow of TypeScript function tasks (make data, fit, report)",
  python: "a flow of Python script steps (prepare, train, evaluate), the shape of MLflow's multi-step workflow",
} as const;
export type TemplateName = keyof typeof TEMPLATES;

/** Versions init adds when the project does not have them already (the user's own win). */
const DEPENDENCIES = { zod: "^4.1.0" };
const DEV_DEPENDENCIES = { typescript: "^5.9.3", "@types/node": `^${process.versions.node.split(".")[0]}`, tsx: "^4.20.0" };
const SCRIPTS = { flow: "cairn run flow.ts", plan: "cairn plan flow.ts", typecheck: "tsc --noEmit" };
const GITIGNORE = readTemplate("gitignore").trim().split("\n");

export interface InitOptions {
  /** The project folder; created when missing. */
  dir: string;
  template: TemplateName;
  /** Runs the package manager's install at the end. @default true */
  install?: boolean;
  /** Cairn's own version, added as the `cairn-dag` dependency when the project lacks one. */
  cairnVersion: string;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

/** Scaffolds the project; resolves to the exit code of the install (0 when skipped). */
export async function initProject(options: InitOptions): Promise<number> {
  const dir = resolve(options.dir);
  const templateDir = join(TEMPLATES_DIR, options.template);
  const files = new Map<string, string>([["tsconfig.json", readTemplate("tsconfig.json")]]);
  for (const file of walk(templateDir)) files.set(relative(templateDir, file), readFileSync(file, "utf8"));

  const existing = [...files.keys()].filter((file) => existsSync(join(dir, file)));
  if (existing.length > 0) {
    throw new UsageError(
      `cairn init would overwrite ${existing.join(", ")} in ${dir}, and it never overwrites a file. ` +
        `Move ${existing.length === 1 ? "it" : "them"} away, or scaffold into another folder: cairn init my-flow.`,
    );
  }
  const pkgPath = join(dir, "package.json");
  const pkg = readPackageJson(pkgPath);
  const changes = mergePackageJson(pkg, dir, options.cairnVersion);

  mkdirSync(dir, { recursive: true });
  for (const [file, text] of files) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text, { flag: "wx" });
  }
  writeFileSync(pkgPath, `${JSON.stringify(pkg, null, 2)}\n`);
  const ignored = appendGitignore(join(dir, ".gitignore"));

  const { stdout } = options;
  stdout.write(`Created ${[...files.keys()].join(", ")} in ${dir} (template "${options.template}": ${TEMPLATES[options.template]}).\n`);
  stdout.write(`Updated package.json: ${changes.join("; ") || "nothing to add"}.\n`);
  if (ignored.length) stdout.write(`Added to .gitignore: ${ignored.join(" ")}\n`);

  let code = 0;
  if (options.install !== false) {
    const pm = packageManager(options.env);
    stdout.write(`Installing with ${pm}...\n`);
    code = await install(pm, dir, options.env);
    if (code !== 0) options.stderr.write(`cairn: \`${pm} install\` exited with ${code}; run it yourself in ${dir}.\n`);
  }
  const cd = dir === resolve(".") ? "" : `  cd ${relative(process.cwd(), dir) || dir}\n`;
  stdout.write(
    `\nNext:\n${cd}` +
      `  npx cairn run flow.ts       # run the flow (again: every task comes from the cache)\n` +
      `  npx cairn plan flow.ts      # what would run, and why\n` +
      `  npm run typecheck           # tsc --noEmit\n`,
  );
  return code;
}

function readTemplate(name: string): string {
  return readFileSync(join(TEMPLATES_DIR, name), "utf8");
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}

type PackageJson = Record<string, unknown> & {
  type?: unknown;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};

/** package.json as it is, or a new one named after the folder. */
function readPackageJson(path: string): PackageJson {
  if (!existsSync(path)) {
    const name = basename(dirname(path)).toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "");
    return { name: name || "my-flow", private: true };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UsageError(`${path} is not valid JSON (${(error as Error).message}). Fix it, then run cairn init again.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${path} must hold a JSON object, got ${Array.isArray(parsed) ? "an array" : typeof parsed}. Fix it, then run cairn init again.`);
  }
  return parsed as PackageJson;
}

/** Adds what the scaffold needs to `pkg` in place; returns what it changed, in words. */
function mergePackageJson(pkg: PackageJson, dir: string, cairnVersion: string): string[] {
  const changes: string[] = [];
  if (pkg.type === undefined || pkg.type === "commonjs") {
    // A flow file is an ES module; a package that is CommonJS already has .js files that would change meaning.
    const js = pkg.type === "commonjs" ? readdirSync(dir).filter((f) => f.endsWith(".js")) : [];
    if (js.length > 0) {
      throw new UsageError(
        `${join(dir, "package.json")} says "type": "commonjs" and ${js.join(", ")} ${js.length === 1 ? "is" : "are"} CommonJS; Cairn's flow files are ES modules. ` +
          `Scaffold into a new folder (cairn init my-flow), or set "type": "module" yourself.`,
      );
    }
    changes.push(`"type": "module"${pkg.type === "commonjs" ? ` (was "commonjs")` : ""}`);
    pkg.type = "module";
  }
  const add = (field: "scripts" | "dependencies" | "devDependencies", entries: Record<string, string>, what: string) => {
    const target = (pkg[field] ??= {});
    const added = Object.entries(entries).filter(([k]) => target[k] === undefined && (field === "scripts" || (pkg.dependencies?.[k] ?? pkg.devDependencies?.[k]) === undefined));
    for (const [k, v] of added) target[k] = v;
    if (added.length) changes.push(`${what} ${added.map(([k]) => k).join(", ")}`);
  };
  add("scripts", SCRIPTS, "scripts");
  add("dependencies", { "cairn-dag": `^${cairnVersion}`, ...DEPENDENCIES }, "dependencies");
  add("devDependencies", DEV_DEPENDENCIES, "devDependencies");
  return changes;
}

/** Appends the lines .gitignore lacks; returns them. */
function appendGitignore(path: string): string[] {
  const text = existsSync(path) ? readFileSync(path, "utf8") : "";
  const have = new Set(text.split(/\r?\n/).map((l) => l.trim()));
  const missing = GITIGNORE.filter((l) => !have.has(l) && !have.has(l.replace(/\/$/, "")));
  if (missing.length) writeFileSync(path, `${text}${text && !text.endsWith("\n") ? "\n" : ""}${missing.join("\n")}\n`);
  return missing;
}

/** The package manager that started this process (npx, pnpm dlx, yarn), else npm. */
function packageManager(env: NodeJS.ProcessEnv): "npm" | "pnpm" | "yarn" {
  const agent = env.npm_config_user_agent ?? "";
  return agent.startsWith("pnpm") ? "pnpm" : agent.startsWith("yarn") ? "yarn" : "npm";
}

function install(pm: string, cwd: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done) => {
    const child = spawn(pm, ["install"], { cwd, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", () => done(127));
    child.on("close", (code) => done(code ?? 1));
  });
}
