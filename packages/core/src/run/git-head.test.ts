import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ASK_GIT, gitHeadOf } from "./git-head.ts";

/** What `sourceTags` took before: git's own answer, or undefined where it fails. */
function gitSays(dir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: dir, env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The env git is run with in these tests: none of the caller's GIT_* variables (a hook's GIT_DIR), a fixed identity. */
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("GIT_"))),
  HOME: tmpdir(),
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", ...args], { cwd, env, stdio: "ignore" });

const root = realpathSync(mkdtempSync(join(tmpdir(), "cairn-git-head-")));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function repo(name: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "flows"), { recursive: true });
  git(dir, "init", "-q");
  writeFileSync(join(dir, "flows", "flow.ts"), "export {};\n");
  git(dir, "add", ".");
  git(dir, "commit", "-q", "-m", "one");
  return dir;
}

describe("gitHeadOf: git's answer without spawning git", () => {
  it("reads a branch's loose ref, from a folder inside the checkout", () => {
    const dir = repo("loose");
    expect(gitHeadOf(join(dir, "flows"), env)).toBe(gitSays(join(dir, "flows"), env));
    expect(gitHeadOf(join(dir, "flows"), env)).toMatch(/^[0-9a-f]{40}$/);
  });

  it("reads a packed ref, and a detached HEAD", () => {
    const dir = repo("packed");
    git(dir, "pack-refs", "--all");
    expect(gitHeadOf(dir, env)).toBe(gitSays(dir, env));
    writeFileSync(join(dir, "two.txt"), "2\n");
    git(dir, "add", ".");
    git(dir, "commit", "-q", "-m", "two");
    git(dir, "checkout", "-q", "--detach", "HEAD~1");
    expect(gitHeadOf(dir, env)).toBe(gitSays(dir, env));
    expect(gitSays(dir, env)).toMatch(/^[0-9a-f]{40}$/);
  });

  it("outside any repository: undefined, as git fails", () => {
    const dir = join(root, "plain");
    mkdirSync(dir, { recursive: true });
    // Only meaningful where the temp folder is in no checkout itself.
    if (gitSays(dir, env) !== undefined) return;
    expect(gitHeadOf(dir, env)).toBeUndefined();
  });

  it("a repository but no git on PATH: undefined, as the spawn fails", () => {
    const dir = repo("no-git");
    expect(gitHeadOf(dir, { ...env, PATH: join(root, "empty-bin") })).toBeUndefined();
  });

  it("reads a linked worktree's HEAD (its .git file), on a branch and detached", () => {
    const dir = repo("linked");
    git(dir, "worktree", "add", "-q", "-b", "other", join(root, "linked-branch"));
    git(dir, "worktree", "add", "-q", "--detach", join(root, "linked-detached"));
    git(dir, "pack-refs", "--all");
    for (const tree of ["linked-branch", "linked-detached"]) {
      expect(gitHeadOf(join(root, tree), env)).toBe(gitSays(join(root, tree), env));
      expect(gitSays(join(root, tree), env)).toMatch(/^[0-9a-f]{40}$/);
    }
  });

  it("leaves the unusual cases to git: variables that steer git, an unborn branch, a folder that does not exist", () => {
    const dir = repo("unusual");
    expect(gitHeadOf(dir, { ...env, GIT_DIR: join(dir, ".git") })).toBe(ASK_GIT);
    const unborn = join(root, "unborn");
    mkdirSync(unborn);
    git(unborn, "init", "-q");
    expect(gitHeadOf(unborn, env)).toBe(ASK_GIT);
    expect(gitSays(unborn, env)).toBeUndefined();
    expect(gitHeadOf(dir, { ...env, GIT_SSL_CAINFO: "/etc/ssl/ca.pem" })).toBe(gitSays(dir, env));
    expect(gitHeadOf(join(root, "missing"), env)).toBe(ASK_GIT);
  });

  it("leaves a repository with config extensions to git", () => {
    const dir = repo("extensions");
    git(dir, "config", "extensions.worktreeConfig", "true");
    expect(gitHeadOf(dir, env)).toBe(ASK_GIT);
  });
});
