/**
 * `cairn init`: scaffolds a Cairn project in a folder (the working directory by default),
 * from one of the templates shipped in this package's templates/ folder: a flow file (and,
 * for the Python template, its steps), a strict tsconfig.json, `.gitignore` lines, and
 * package.json scripts and dependencies; then installs those with the package manager that
 * ran it. It never overwrites a file: when one of the files it would write exists, it
 * writes nothing and says which. package.json and .gitignore are merged into, not replaced:
 * keys and lines already there stay as they are.
 *
 * Everything that can be checked is checked before the first write (the target is a folder or
 * can be made one, it and the files init merges into can be written, package.json parses), so
 * that a refusal leaves the folder as it was; a write that fails all the same (a full disk)
 * takes back what init had written, since a half-scaffolded folder would make the next
 * `cairn init` refuse to overwrite the files of the failed one.
 */
import { spawn } from "node:child_process";
import {
  accessSync,
  chmodSync,
  constants,
  type Dirent,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { packageManagerOf, shellQuote } from "@cairn/core";
import { cairnTarballsCommand } from "./install-advice.ts";
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

  checkTarget(dir);
  // A file where the template needs a folder (`steps`) is in the way as much as a file it would write.
  const existing = [...new Set([...files.keys()].map((file) => inTheWay(dir, file)).filter((file) => file !== undefined))];
  if (existing.length > 0) {
    throw new UsageError(
      `cairn init would overwrite ${existing.join(", ")} in ${dir}, and it never overwrites a file. ` +
        `Move ${existing.length === 1 ? "it" : "them"} away, or scaffold into another folder: cairn init my-flow.`,
    );
  }
  const pkgPath = join(dir, "package.json");
  const pkg = readPackageJson(pkgPath);
  const olderTypeScript = typeScriptWithoutRewrite(dir, pkg);
  if (olderTypeScript) files.set("tsconfig.json", withoutRewriteOption(files.get("tsconfig.json") ?? ""));
  const changes = mergePackageJson(pkg, dir, options.cairnVersion);
  const gitignorePath = join(dir, ".gitignore");
  const gitignore = gitignoreLines(gitignorePath);

  const writes: Array<{ path: string; text: string }> = [
    ...[...files].map(([file, text]) => ({ path: join(dir, file), text })),
    { path: pkgPath, text: `${JSON.stringify(pkg, null, 2)}\n` },
    ...(gitignore.missing.length ? [{ path: gitignorePath, text: gitignore.text }] : []),
  ];
  writeAll(dir, writes);
  const ignored = gitignore.missing;

  const { stdout } = options;
  stdout.write(`Created ${[...files.keys()].join(", ")} in ${dir} (template "${options.template}": ${TEMPLATES[options.template]}).\n`);
  stdout.write(`Updated package.json: ${changes.join("; ") || "nothing to add"}.\n`);
  if (ignored.length) stdout.write(`Added to .gitignore: ${ignored.join(" ")}\n`);
  if (olderTypeScript) stdout.write(rewriteLeftOut(olderTypeScript, packageManagerOf(options.env)));

  let code = 0;
  const pm = packageManagerOf(options.env); // the one that started this process (npx, pnpm dlx, yarn)
  const cd = dir === resolve(".") ? "" : `  ${cdCommand(dir)}\n`;
  const { exec, script } = COMMANDS_OF[pm];
  if (options.install !== false) {
    stdout.write(`Installing with ${pm}...\n`);
    code = await install(pm, dir, options.env);
    // No "Next" steps: without the install, `npx cairn` there fetches the registry's unrelated `cairn`.
    if (code !== 0) {
      options.stderr.write(installFailed(pm, dir, code, cd));
      return code;
    }
  }
  // Skipped by --no-install, the install comes first: `npx cairn` before it fetches the registry's unrelated `cairn`.
  const skipped = options.install === false;
  const next: Array<[string, string]> = [
    ...(skipped ? [[`${pm} install`, `install what package.json lists (--no-install skipped it; ${exec} needs it)`] as [string, string]] : []),
    [`${exec} run flow.ts`, "run the flow (again: every task comes from the cache)"],
    [`${exec} plan flow.ts`, "what would run, and why"],
    [`${script} typecheck`, "tsc --noEmit"],
  ];
  const width = Math.max(...next.map(([command]) => command.length)) + 2;
  stdout.write(`\nNext:\n${cd}${next.map(([command, what]) => `  ${command.padEnd(width)}# ${what}\n`).join("")}`);
  // Added from the registry, where Cairn is not yet: that install would answer 404 for it.
  if (skipped && changes.some((c) => c.startsWith("dependencies") && c.includes("cairn-dag"))) {
    stdout.write(
      `cairn-dag is not on npm yet: if \`${pm} install\` cannot find it (404), install instead the tarballs that \`pnpm pack:all DIR\` makes in a clone of Cairn ` +
        `(README: "Until it is on npm"): ${cairnTarballsCommand(pm)}\n`,
    );
  }
  return code;
}

/**
 * `cd` to `dir` as the user can paste it: one shell word (a folder named `x y`, `it's` or `d$HOME`
 * would be split or expanded), and `./` before a leading `-`, which `cd` would take as an option.
 */
function cdCommand(dir: string): string {
  const path = relative(process.cwd(), dir) || dir;
  return `cd ${shellQuote(path.startsWith("-") ? `./${path}` : path)}`;
}

/**
 * What to do when the install failed, in the commands of `pm`: most often it could not find
 * cairn-dag on the registry (not published yet), and the tarballs are installed instead.
 */
function installFailed(pm: keyof typeof COMMANDS_OF, dir: string, code: number, cd: string): string {
  const tarballs = cairnTarballsCommand(pm);
  return (
    `cairn: \`${pm} install\` exited with ${code} in ${dir}, so Cairn is not installed there, and \`${COMMANDS_OF[pm].exec}\` there ` +
    `${pm === "npm" ? "would fetch the npm registry's package named `cairn`, which is someone else's" : "finds no cairn"}. If the install could not find cairn-dag (404: Cairn is not on npm yet), ` +
    `install there the tarballs that \`pnpm pack:all DIR\` makes in a clone of Cairn (README: "Until it is on npm"), then run the flow:\n` +
    `${cd}  ${tarballs}\n  ${COMMANDS_OF[pm].exec} run flow.ts\n` +
    `Otherwise fix what ${pm} said above, run \`${pm} install\` there again, then \`${COMMANDS_OF[pm].exec} run flow.ts\`.\n`
  );
}

/** The TypeScript release that brought the tsconfig option `rewriteRelativeImportExtensions` (older ones stop at it: TS5023). */
const REWRITE_SINCE = [5, 7] as const;

/**
 * The TypeScript a project keeps (init adds its own only when package.json names none) when
 * it predates `rewriteRelativeImportExtensions`: the version installed in the project's
 * node_modules, else the lowest one its range names (what a lockfile may hold). Undefined
 * when it has the option, or when the range names no version (`latest`, a git URL).
 */
function typeScriptWithoutRewrite(dir: string, pkg: PackageJson): { version: string; from: string } | undefined {
  const range = pkg.devDependencies?.typescript ?? pkg.dependencies?.typescript;
  if (typeof range !== "string") return undefined;
  const found = installedTypeScript(dir) ?? { version: range, from: "the range in package.json" };
  const [, major, minor] = /(\d+)\.(\d+)/.exec(found.version) ?? [];
  if (major === undefined || minor === undefined) return undefined;
  const older = Number(major) < REWRITE_SINCE[0] || (Number(major) === REWRITE_SINCE[0] && Number(minor) < REWRITE_SINCE[1]);
  return older ? found : undefined;
}

/** The version of the typescript package in the project's own node_modules, if one is there. */
function installedTypeScript(dir: string): { version: string; from: string } | undefined {
  const path = join(dir, "node_modules", "typescript", "package.json");
  try {
    const { version } = JSON.parse(readFileSync(path, "utf8")) as { version?: unknown };
    return typeof version === "string" ? { version, from: "node_modules/typescript" } : undefined;
  } catch {
    // None installed (or unreadable): the range in package.json decides.
    return undefined;
  }
}

/** The template's tsconfig without the `rewriteRelativeImportExtensions` line. */
function withoutRewriteOption(tsconfig: string): string {
  return tsconfig.replace(/^[ \t]*"rewriteRelativeImportExtensions": true,\r?\n/m, "");
}

/** Init's word on the option it left out, and how to have it. */
function rewriteLeftOut(typescript: { version: string; from: string }, pm: keyof typeof COMMANDS_OF): string {
  const upgrade = pm === "npm" ? "npm install --save-dev typescript@^5.7" : pm === "pnpm" ? "pnpm add -D typescript@^5.7" : "yarn add -D typescript@^5.7";
  return (
    `Left "rewriteRelativeImportExtensions" out of tsconfig.json: it needs TypeScript >= ${REWRITE_SINCE.join(".")}, and the project keeps ` +
    `TypeScript ${typescript.version} (${typescript.from}), whose tsc would refuse it (TS5023). So an app that tsc compiles imports the flow as ` +
    `"./flow.js", not "./flow.ts". To have it: ${upgrade}, then add "rewriteRelativeImportExtensions": true to tsconfig.json.\n`
  );
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
  const text = fsStep("read", path, () => readFileSync(path, "utf8"));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not valid JSON (${(error as Error).message}). Fix it, then run cairn init again.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    const got = parsed === null ? "null" : Array.isArray(parsed) ? "an array" : `a ${typeof parsed}`;
    throw new UsageError(`${path} must hold a JSON object, got ${got}. Fix it, then run cairn init again.`);
  }
  return parsed as PackageJson;
}

/** Adds what the scaffold needs to `pkg` in place; returns what it changed, in words. */
function mergePackageJson(pkg: PackageJson, dir: string, cairnVersion: string): string[] {
  const changes: string[] = [];
  if (pkg.type === undefined || pkg.type === "commonjs") {
    // A flow file is an ES module; in a CommonJS package (a missing "type" is CommonJS too) its .js files would change meaning.
    // Without a package.json of its own, the folder's .js files follow the nearest one above (none: CommonJS).
    const own = existsSync(join(dir, "package.json"));
    const js = existsSync(dir) && (own || nearestPackageType(dirname(dir)) !== "module") ? commonJsFiles(dir) : [];
    if (js.length > 0) {
      const says = !own
        ? `${dir} has no package.json (so its .js files are read as CommonJS, unless one above says "type": "module")`
        : `${join(dir, "package.json")} ${pkg.type === "commonjs" ? `says "type": "commonjs"` : `has no "type", which means CommonJS,`}`;
      const listed = js.length > JS_FILES_NAMED ? `${js.slice(0, JS_FILES_NAMED).join(", ")}, ...` : js.join(", ");
      throw new UsageError(
        `${says} and ${listed} ${js.length === 1 ? "is" : "are"} read as CommonJS; Cairn's flow files are ES modules, and "type": "module" would make Node read ${js.length === 1 ? "it" : "them"} as ES modules (a require() or module.exports there then fails). ` +
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

/** Folders that hold no code of the package's own that Node runs: installed, built, tool state, Python environments, browser assets. */
const NOT_THE_PACKAGES = new Set([
  "node_modules", "dist", "build", "out", "coverage", ".git", ".venv", "venv", "env", ".tox", "__pycache__", ".cairn", ".next", ".nuxt", ".cache", "public", "static",
]);
/** Entries looked at at most: a folder of data is not searched to its end. */
const ENTRIES_LOOKED_AT = 20_000;

/** The "type" of the nearest package.json in `dir` or above it, or undefined when none says one (or there is none). */
function nearestPackageType(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const path = join(d, "package.json");
    if (existsSync(path)) {
      try {
        const type = (JSON.parse(readFileSync(path, "utf8")) as PackageJson).type;
        return typeof type === "string" ? type : undefined;
      } catch {
        return undefined;
      }
    }
    if (dirname(d) === d) return undefined;
  }
}
/** How many .js files the refusal names; looking stops at the next one. */
const JS_FILES_NAMED = 3;

/**
 * The package's .js files (relative paths, at most JS_FILES_NAMED + 1), in `dir` and its subfolders
 * but those of NOT_THE_PACKAGES and those that are packages of their own (a package.json decides
 * for its folder).
 */
function commonJsFiles(dir: string): string[] {
  const found: string[] = [];
  let seen = 0;
  const visit = (folder: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch (error) {
      // A subfolder this user cannot list (a database's data folder of another uid) holds nothing it could break.
      if (folder !== dir && ["EACCES", "EPERM", "ELOOP", "ENOENT", "ENOTDIR"].includes((error as NodeJS.ErrnoException).code ?? "")) return;
      return void fsStep("list", folder, () => {
        throw error;
      });
    }
    for (const entry of entries) {
      if (found.length > JS_FILES_NAMED || ++seen > ENTRIES_LOOKED_AT) return;
      const path = join(folder, entry.name);
      if (entry.isFile() && entry.name.endsWith(".js")) found.push(relative(dir, path));
      else if (entry.isDirectory() && !NOT_THE_PACKAGES.has(entry.name) && !existsSync(join(path, "package.json"))) visit(path);
    }
  };
  visit(dir);
  return found;
}

/** The lines .gitignore lacks, and its text with them appended. */
function gitignoreLines(path: string): { missing: string[]; text: string } {
  const text = existsSync(path) ? fsStep("read", path, () => readFileSync(path, "utf8")) : "";
  const have = new Set(text.split(/\r?\n/).map((l) => l.trim()));
  const missing = GITIGNORE.filter((l) => !have.has(l) && !have.has(l.replace(/\/$/, "")));
  return { missing, text: `${text}${text && !text.endsWith("\n") ? "\n" : ""}${missing.join("\n")}\n` };
}

/** `file`, or the first folder on its way, when something is already there (a folder that is a folder is not in the way). */
function inTheWay(dir: string, file: string): string | undefined {
  const parts = file.split(/[\\/]/);
  for (let i = 1; i <= parts.length; i++) {
    const path = join(dir, ...parts.slice(0, i));
    if (!existsSync(path)) return undefined;
    if (i === parts.length || !fsStep("look at", path, () => statSync(path)).isDirectory()) return parts.slice(0, i).join("/");
  }
  return undefined;
}

/**
 * Refuses, before anything is written, a target that is not a folder (nor a path one can be made
 * at) and one the user cannot write into, and the existing files init merges into when they
 * cannot be written.
 */
function checkTarget(dir: string): void {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const stat = fsStep("look at", existing, () => statSync(existing));
  if (!stat.isDirectory()) {
    const where = existing === dir ? "" : ` on its way: ${existing}`;
    throw new UsageError(
      `Expected ${dir} to be a folder, or a path where one can be made, got a file${where}. Nothing was written. Pass a folder: cairn init my-flow.`,
    );
  }
  writable(existing, existing === dir ? "the folder to scaffold into" : `where ${dir} would be made`);
  for (const name of ["package.json", ".gitignore"]) {
    const path = join(dir, name);
    if (existsSync(path)) writable(path, "cairn init adds to it");
  }
}

function writable(path: string, role: string): void {
  try {
    accessSync(path, constants.W_OK);
  } catch (error) {
    throw new UsageError(
      `Expected ${path} (${role}) to be writable, got ${reason(error)}. Nothing was written. ` +
        `Make it writable (chmod u+w), or scaffold into another folder: cairn init my-flow.`,
      { cause: error },
    );
  }
}

/**
 * Writes every file (new ones with `wx`: never over a file that appeared meanwhile; package.json
 * and .gitignore through a temp sibling renamed over them), making the folders they need. When a
 * write fails, what was written is taken back (new files and folders removed, the one whose write
 * failed too, package.json and .gitignore given back their text) and the failure is a UsageError
 * saying which file and why.
 */
function writeAll(dir: string, writes: ReadonlyArray<{ path: string; text: string }>): void {
  const undo: Array<{ path: string; step: () => void }> = [];
  let doing = "";
  try {
    for (const { path, text } of writes) {
      doing = `make the folder of ${path}`;
      const madeDir = mkdirSync(dirname(path), { recursive: true });
      if (madeDir !== undefined) undo.push({ path: madeDir, step: () => rmSync(madeDir, { recursive: true, force: true }) });
      doing = `write ${path}`;
      if (!existsSync(path)) {
        const remove = { path, step: () => rmSync(path, { force: true }) };
        try {
          writeFileSync(path, text, { flag: "wx" });
        } catch (error) {
          // A write can fail after `wx` made the file (a full disk): the cut or empty file is ours to
          // remove. EEXIST alone means the file is someone else's, which appeared meanwhile.
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") undo.push(remove);
          throw error;
        }
        undo.push(remove);
      } else {
        // The user's own file (package.json, .gitignore) is never cut off: the new text goes to a
        // sibling first, which replaces the file only once it is whole (through a symlink, its target).
        const before = readFileSync(path, "utf8");
        const target = realpathSync(path);
        const mode = statSync(target).mode & 0o7777;
        undo.push({ path: tempOf(target), step: () => rmSync(tempOf(target), { force: true }) });
        replaceWhole(target, text, mode);
        // Given back its text the same way: a restore cut off (a full disk, a crash) would lose it.
        undo.push({ path, step: () => replaceWhole(target, before, mode) });
      }
    }
  } catch (error) {
    const left: string[] = [];
    for (const { path, step } of undo.reverse()) {
      try {
        step();
      } catch {
        left.push(path);
      }
    }
    const undone = left.length ? `it could not take back what it wrote to ${left.join(", ")}` : `what it had written in ${dir} is taken back`;
    throw new UsageError(`cairn init could not ${doing}: ${reason(error)}; ${undone}. Fix that, then run cairn init again.`, { cause: error });
  }
}

/** The temp sibling through which `target` is replaced. */
function tempOf(target: string): string {
  return join(dirname(target), `.${basename(target)}.cairn-init-${process.pid}`);
}

/**
 * Replaces `target` with `text` through its temp sibling, renamed over it once whole, with `mode`:
 * a write that fails leaves `target` as it was. A temp the failure left is removed (the caller's
 * undo removes it too, should that fail).
 */
function replaceWhole(target: string, text: string, mode: number): void {
  const temp = tempOf(target);
  try {
    writeFileSync(temp, text, { flag: "wx", mode });
    chmodSync(temp, mode); // the umask cut the mode given to the write: a 0664 file would become 0644
    renameSync(temp, target);
  } catch (error) {
    try {
      rmSync(temp, { force: true });
    } catch {
      // The write's error is the one to tell; the undo step for the temp tries again.
    }
    throw error;
  }
}

/** Runs one file system step of the checks; its failure is a UsageError that says which step, on which path, and why. */
function fsStep<T>(what: string, path: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    throw new UsageError(`cairn init could not ${what} ${path}: ${reason(error)}. Nothing was written. Fix that, then run cairn init again.`, { cause: error });
  }
}

/** A file system error in words: its code and what the code means (`EACCES (permission denied)`). */
function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${code} (${describeCode(code)})` : (error as Error).message;
}

function describeCode(code: string): string {
  const known: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EROFS: "read-only file system",
    ENOSPC: "no space left on device",
    EEXIST: "a file is already there",
    ENOTDIR: "a part of the path is a file, not a folder",
    EISDIR: "it is a folder, not a file",
  };
  return Object.hasOwn(known, code) ? known[code]! : "file system error";
}

/** How each package manager runs the project's `cairn` and its package.json scripts. */
const COMMANDS_OF = {
  npm: { exec: "npx cairn", script: "npm run" },
  pnpm: { exec: "pnpm exec cairn", script: "pnpm run" },
  yarn: { exec: "yarn cairn", script: "yarn run" },
} as const;

function install(pm: string, cwd: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done) => {
    const child = spawn(pm, ["install"], { cwd, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", () => done(127));
    child.on("close", (code) => done(code ?? 1));
  });
}
