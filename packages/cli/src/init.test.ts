import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { initProject } from "./init.ts";
import { main } from "./main.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function folder(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "cairn-init-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const init = (dir: string, template: "ts" | "python" = "ts") =>
  initProject({ dir, template, install: false, cairnVersion: "0.1.0", stdout: new PassThrough(), stderr: new PassThrough(), env: {} });

const pkg = (dir: string) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));

describe("cairn init", () => {
  it("makes a new package.json named after the folder, and keeps what an existing one has", async () => {
    const fresh = folder();
    await init(fresh);
    expect(pkg(fresh)).toMatchObject({ private: true, type: "module", dependencies: { "cairn-dag": "^0.1.0", zod: "^4.1.0" } });

    const existing = folder({ "package.json": JSON.stringify({ name: "mine", scripts: { flow: "my own" }, devDependencies: { typescript: "5.4.0" } }) });
    await init(existing, "python");
    const merged = pkg(existing);
    expect(merged.name).toBe("mine");
    expect(merged.private).toBeUndefined();
    expect(merged.scripts.flow).toBe("my own");
    expect(merged.scripts.typecheck).toBe("tsc --noEmit");
    expect(merged.devDependencies.typescript).toBe("5.4.0");
    expect(existsSync(join(existing, "steps/train.py"))).toBe(true);
  });

  it("refuses to overwrite a file, and writes nothing then", async () => {
    const dir = folder({ "flow.ts": "// mine\n" });
    await expect(init(dir)).rejects.toThrow(/cairn init would overwrite flow\.ts in .*, and it never overwrites a file\. Move it away, or scaffold into another folder: cairn init my-flow\./);
    expect(readFileSync(join(dir, "flow.ts"), "utf8")).toBe("// mine\n");
    expect(existsSync(join(dir, "tsconfig.json"))).toBe(false);
    expect(existsSync(join(dir, "package.json"))).toBe(false);
  });

  it("switches a CommonJS package with no .js files to ESM, and refuses one that has them", async () => {
    const empty = folder({ "package.json": JSON.stringify({ name: "x", type: "commonjs" }) });
    await init(empty);
    expect(pkg(empty).type).toBe("module");

    const cjs = folder({ "package.json": JSON.stringify({ name: "x", type: "commonjs" }), "index.js": "module.exports = 1;\n" });
    await expect(init(cjs)).rejects.toThrow(/says "type": "commonjs" and index\.js is read as CommonJS; Cairn's flow files are ES modules, and "type": "module" would make Node read it as ES modules \(a require\(\) or module\.exports there then fails\)\. Scaffold into a new folder/);
    expect(pkg(cjs).type).toBe("commonjs");
  });

  it("refuses a package without \"type\" (CommonJS too) that has .js files, and one whose .js files are in subfolders", async () => {
    const untyped = folder({ "package.json": JSON.stringify({ name: "legacy", main: "index.js" }), "index.js": "const path = require(\"path\");\n" });
    await expect(init(untyped)).rejects.toThrow(/package\.json has no "type", which means CommonJS, and index\.js is read as CommonJS; Cairn's flow files are ES modules, and "type": "module" would make Node read it as ES modules/);
    expect(pkg(untyped).type).toBeUndefined();
    expect(existsSync(join(untyped, "flow.ts"))).toBe(false);

    const nested = folder({ "package.json": JSON.stringify({ name: "x", type: "commonjs" }) });
    mkdirSync(join(nested, "src/lib"), { recursive: true });
    for (const name of ["a", "b", "c", "d", "e"]) writeFileSync(join(nested, "src/lib", `${name}.js`), "module.exports = 1;\n");
    await expect(init(nested)).rejects.toThrow(/says "type": "commonjs" and src\/lib\/a\.js, src\/lib\/b\.js, src\/lib\/c\.js, \.\.\. are read as CommonJS;/);
    expect(pkg(nested).type).toBe("commonjs");
  });

  it("switches a package without \"type\" to ESM when its only .js files are installed, built, or another package's", async () => {
    const dir = folder({ "package.json": JSON.stringify({ name: "x" }) });
    for (const sub of ["node_modules/dep", "dist", "build", ".venv/lib", "tools/vendored"]) {
      mkdirSync(join(dir, sub), { recursive: true });
      writeFileSync(join(dir, sub, "index.js"), "module.exports = 1;\n");
    }
    writeFileSync(join(dir, "tools/vendored/package.json"), "{}\n");
    await init(dir);
    expect(pkg(dir).type).toBe("module");
  });

  it("refuses a folder with .js files and no package.json (CommonJS too); skips folders it cannot list and browser assets", async () => {
    const bare = folder({ "index.js": "const path = require(\"path\");\n" });
    await expect(init(bare)).rejects.toThrow(/has no package\.json \(so its \.js files are read as CommonJS, unless one above says "type": "module"\) and index\.js is read as CommonJS/);
    expect(existsSync(join(bare, "package.json"))).toBe(false);

    const site = folder({ "package.json": JSON.stringify({ name: "site" }) });
    for (const sub of ["public", "venv/lib/site-packages/plotly", "coverage"]) {
      mkdirSync(join(site, sub), { recursive: true });
      writeFileSync(join(site, sub, "app.js"), "window.x = 1;\n");
    }
    await init(site);
    expect(pkg(site).type).toBe("module");
  });

  it.skipIf(process.getuid?.() === 0)("skips a subfolder it cannot list (a database's data folder of another user)", async () => {
    const dir = folder({ "package.json": JSON.stringify({ name: "app" }) });
    mkdirSync(join(dir, "pgdata"));
    chmodSync(join(dir, "pgdata"), 0o000);
    try {
      await init(dir);
      expect(pkg(dir).type).toBe("module");
    } finally {
      chmodSync(join(dir, "pgdata"), 0o755);
    }
  });

  it("says what to run next in the commands of the package manager that started it", async () => {
    const said = async (agent: string | undefined) => {
      const stdout = new PassThrough();
      let text = "";
      stdout.on("data", (d: Buffer) => (text += d));
      const env = agent === undefined ? {} : { npm_config_user_agent: agent };
      await initProject({ dir: folder(), template: "ts", install: false, cairnVersion: "0.1.0", stdout, stderr: new PassThrough(), env });
      return text.slice(text.indexOf("Next:"));
    };
    const npm = await said(undefined);
    expect(npm).toContain("  npx cairn run flow.ts   # run the flow (again: every task comes from the cache)\n");
    expect(npm).toContain("  npm run typecheck       # tsc --noEmit\n");
    const pnpm = await said("pnpm/10.34.9 npm/? node/v20.20.2 linux x64");
    expect(pnpm).toContain("  pnpm exec cairn run flow.ts   # run the flow (again: every task comes from the cache)\n");
    expect(pnpm).toContain("  pnpm exec cairn plan flow.ts  # what would run, and why\n");
    expect(pnpm).toContain("  pnpm run typecheck            # tsc --noEmit\n");
    expect(pnpm).not.toMatch(/ npx | npm run /);
  });

  it("with --no-install puts the install first in what to run next, and how to install Cairn where the registry has it not", async () => {
    const said = async (agent: string | undefined, pkgJson?: object) => {
      const stdout = new PassThrough();
      let text = "";
      stdout.on("data", (d: Buffer) => (text += d));
      const env = agent === undefined ? {} : { npm_config_user_agent: agent };
      const dir = folder(pkgJson ? { "package.json": JSON.stringify(pkgJson) } : {});
      await initProject({ dir, template: "ts", install: false, cairnVersion: "0.1.0", stdout, stderr: new PassThrough(), env });
      return text.slice(text.indexOf("Next:"));
    };
    // Before: "Next:\n  npx cairn run flow.ts", which without the install fetches the registry's unrelated `cairn`.
    const npm = await said(undefined);
    expect(npm).toMatch(/^Next:\n {2}cd .*\n {2}npm install {13}# install what package.json lists \(--no-install skipped it; npx cairn needs it\)\n {2}npx cairn run flow.ts/);
    expect(npm).toContain('cairn-dag is not on npm yet: if `npm install` cannot find it (404), install instead the tarballs that `pnpm pack:all DIR` makes in a clone of Cairn (README: "Until it is on npm"): npm install DIR/*.tgz\n');
    const pnpm = await said("pnpm/10.34.9 npm/? node/v20.20.2 linux x64");
    expect(pnpm).toMatch(/^Next:\n {2}cd .*\n {2}pnpm install +# install what package.json lists \(--no-install skipped it; pnpm exec cairn needs it\)\n {2}pnpm exec cairn run flow.ts/);
    // Cairn already a dependency (its tarballs installed): the install is still first, with no word on the registry.
    const installed = await said(undefined, { name: "x", type: "module", dependencies: { "cairn-dag": "file:../cairn-dag-0.1.0.tgz" } });
    expect(installed).toMatch(/^Next:\n {2}cd .*\n {2}npm install /);
    expect(installed).not.toContain("not on npm yet");
  });

  it("leaves rewriteRelativeImportExtensions out of tsconfig.json, and says so, when the project keeps a TypeScript older than 5.7", async () => {
    const initSaying = async (dir: string) => {
      const stdout = new PassThrough();
      let text = "";
      stdout.on("data", (d: Buffer) => (text += d));
      await initProject({ dir, template: "ts", install: false, cairnVersion: "0.1.0", stdout, stderr: new PassThrough(), env: {} });
      return { said: text, options: JSON.parse(readFileSync(join(dir, "tsconfig.json"), "utf8")).compilerOptions as Record<string, unknown> };
    };
    // Installed 5.4 under a range that allows 5.9: tsc is the installed one.
    const installed = folder({ "package.json": JSON.stringify({ name: "x", type: "module", devDependencies: { typescript: "^5.4.0" } }) });
    mkdirSync(join(installed, "node_modules/typescript"), { recursive: true });
    writeFileSync(join(installed, "node_modules/typescript/package.json"), JSON.stringify({ name: "typescript", version: "5.4.5" }));
    const old = await initSaying(installed);
    expect(old.options.rewriteRelativeImportExtensions).toBeUndefined();
    expect(old.options).toMatchObject({ strict: true, sourceMap: true, verbatimModuleSyntax: true });
    expect(old.said).toContain(
      'Left "rewriteRelativeImportExtensions" out of tsconfig.json: it needs TypeScript >= 5.7, and the project keeps TypeScript 5.4.5 (node_modules/typescript), whose tsc would refuse it (TS5023).',
    );
    expect(old.said).toContain("To have it: npm install --save-dev typescript@^5.7, then add");
    // Not installed yet: the lowest version the range names.
    const pinned = folder({ "package.json": JSON.stringify({ name: "x", type: "module", dependencies: { typescript: "~5.6.2" } }) });
    expect((await initSaying(pinned)).said).toContain("keeps TypeScript ~5.6.2 (the range in package.json)");
    // A TypeScript that has it, or none (init adds ^5.9.3): the option stays, and nothing is said.
    for (const devDependencies of [{ typescript: "5.7.2" }, {}]) {
      const recent = await initSaying(folder({ "package.json": JSON.stringify({ name: "x", type: "module", devDependencies }) }));
      expect(recent.options.rewriteRelativeImportExtensions).toBe(true);
      expect(recent.said).not.toContain("rewriteRelativeImportExtensions");
    }
  });

  it("whose install fails says how to install Cairn there instead of what to run next, which could not work", async () => {
    // An npm that fails as the registry's answers for cairn-dag, which is not on npm yet.
    const bin = folder({ npm: "#!/bin/sh\necho 'npm error 404 Not Found - GET https://registry.npmjs.org/cairn-dag - Not found' >&2\nexit 1\n" });
    chmodSync(join(bin, "npm"), 0o755);
    const dir = join(folder(), "other");
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    let err = "";
    stdout.on("data", (d: Buffer) => (out += d));
    stderr.on("data", (d: Buffer) => (err += d));
    const code = await initProject({ dir, template: "ts", cairnVersion: "0.1.0", stdout, stderr, env: { PATH: bin } });
    expect(code).toBe(1);
    // Before: "Next:\n  cd ...\n  npx cairn run flow.ts", where npx fetches the registry's unrelated `cairn`.
    expect(out).not.toContain("Next:");
    expect(err).toContain(`cairn: \`npm install\` exited with 1 in ${dir}, so Cairn is not installed there, and \`npx cairn\` there would fetch the npm registry's package named \`cairn\`, which is someone else's.`);
    expect(err).toContain(`install there the tarballs that \`pnpm pack:all DIR\` makes in a clone of Cairn (README: "Until it is on npm"), then run the flow:\n  cd ${relative(process.cwd(), dir)}\n  npm install DIR/*.tgz\n  npx cairn run flow.ts\n`);
    expect(err).toContain("Otherwise fix what npm said above, run `npm install` there again, then `npx cairn run flow.ts`.");
  });

  it("says `cd` to the new folder as the shell takes it, after init and after a failed install", async () => {
    // A fake npm that fails, for the install-failed message.
    const bin = folder({ npm: "#!/bin/sh\nexit 1\n" });
    chmodSync(join(bin, "npm"), 0o755);
    const base = folder();
    const cwd = process.cwd();
    process.chdir(base);
    try {
      for (const name of ["x y2", `it's "q2"`, "d$HOME2", "-lead3"]) {
        for (const install of [false, true]) {
          const dir = join(base, `${name}${install ? "-i" : ""}`);
          const out = new PassThrough();
          let text = "";
          out.on("data", (d: Buffer) => (text += d));
          await initProject({ dir, template: "ts", install, cairnVersion: "0.1.0", stdout: out, stderr: out, env: { PATH: bin } });
          // Before: "cd x y2", "cd it's "q2"", "cd d$HOME2", "cd -lead3": none goes there.
          const line = /^ {2}(cd .*)$/m.exec(text)?.[1];
          expect(line, text).toBeDefined();
          const went = spawnSync("sh", ["-c", `${line} && pwd -P`], { cwd: base, encoding: "utf8", env: { HOME: "/nowhere" } });
          expect(went.stderr).toBe("");
          expect(went.stdout.trim()).toBe(realpathSync(dir));
        }
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it("says which package.json is broken", async () => {
    const dir = folder({ "package.json": "{ nope" });
    await expect(init(dir)).rejects.toThrow(/package\.json is not valid JSON \(.*\)\. Fix it, then run cairn init again\./);
    const array = folder({ "package.json": "[]" });
    await expect(init(array)).rejects.toThrow(/must hold a JSON object, got an array/);
    const nothing = folder({ "package.json": "null" });
    await expect(init(nothing)).rejects.toThrow(/must hold a JSON object, got null\./);
    const text = folder({ "package.json": '"x"' });
    await expect(init(text)).rejects.toThrow(/must hold a JSON object, got a string\./);
  });

  it("refuses a target that is a file, or a file where the template needs a folder, writing nothing", async () => {
    const dir = folder({ "notes.txt": "mine\n", steps: "a file\n" });
    await expect(init(join(dir, "notes.txt"))).rejects.toThrow(/Expected .*notes\.txt to be a folder, or a path where one can be made, got a file\. Nothing was written\./);
    await expect(init(join(dir, "notes.txt", "sub"))).rejects.toThrow(/got a file on its way: .*notes\.txt\./);
    await expect(init(dir, "python")).rejects.toThrow(/cairn init would overwrite steps in /);
    expect(readdirSync(dir).sort()).toEqual(["notes.txt", "steps"]);
  });

  it("appends only the .gitignore lines that are missing", async () => {
    const dir = folder({ ".gitignore": "node_modules\n.env" });
    await init(dir);
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toBe("node_modules\n.env\n.cairn/\ndist/\n.venv/\n__pycache__/\ncairn-report-*.html\n");
  });

  it("exits 2 with the choices for an unknown template or a second folder", async () => {
    const stderr = new PassThrough();
    let text = "";
    stderr.on("data", (d: Buffer) => (text += d));
    expect(await main(["init", folder(), "--template", "rust", "--no-install"], { stdout: new PassThrough(), stderr })).toBe(2);
    expect(text).toContain('Expected --template to be one of ts, python, got "rust".');
    expect(await main(["init", "a", "b", "--no-install"], { stdout: new PassThrough(), stderr })).toBe(2);
    expect(text).toContain("Expected at most one folder, got 2: a b.");
  });
});
