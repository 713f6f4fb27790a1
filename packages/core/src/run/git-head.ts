/**
 * The commit `git rev-parse HEAD` would print in a folder, read from the repository's files when
 * that is certain to give git's answer, so that a run's start spawns no process (the spawn of git
 * from a CLI holding its engine cost ~5 ms of the main thread before the flow run's create,
 * and the child's CPU besides: BENCHMARKS.md, "start to first task", twenty-ninth session).
 *
 * Read here only in the common cases: a `.git` folder (or a linked worktree's or a submodule's
 * `.git` file) found on the way up (same file system, owned by this user, with no `extensions` or
 * `include` in the config) whose HEAD names a commit or a branch with a loose or packed ref, and
 * git on PATH; and no repository at all up to the root or a mount point. Anything else (GIT_DIR
 * and the other variables that steer git, a bare repository, sudo, an unborn branch, a symbolic
 * ref, a reftable, another platform) is `ASK_GIT`: the caller spawns git, as before.
 */
import { accessSync, constants, readFileSync, realpathSync, statSync, type Stats } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";

/** git alone can tell: spawn `git rev-parse HEAD`. */
export const ASK_GIT: unique symbol = Symbol("ask git");

/**
 * GIT_* variables that have no say in which repository git finds or what its HEAD is (transport,
 * identity, editors, tracing); any other (GIT_DIR, GIT_CEILING_DIRECTORIES, GIT_CONFIG_*, ...) leaves it to git.
 */
const UNRELATED_GIT_VARIABLE = /^GIT_(?:SSL_|SSH|ASKPASS$|TERMINAL_PROMPT$|AUTHOR_|COMMITTER_|EDITOR$|SEQUENCE_EDITOR$|PAGER$|HTTP_|PROXY_|CURL_|TRACE|FLUSH$|LFS_)/;

const OBJECT_ID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** The commit of HEAD for `dir`, undefined where git would fail (not a repository, no git), or ASK_GIT. */
export function gitHeadOf(dir: string, env: NodeJS.ProcessEnv = process.env): string | undefined | typeof ASK_GIT {
  try {
    return readHead(dir, env);
  } catch {
    return ASK_GIT;
  }
}

function readHead(dir: string, env: NodeJS.ProcessEnv): string | undefined | typeof ASK_GIT {
  if (process.platform === "win32" || typeof process.geteuid !== "function") return ASK_GIT;
  if (Object.keys(env).some((name) => name.startsWith("GIT_") && !UNRELATED_GIT_VARIABLE.test(name))) return ASK_GIT;
  const uid = process.geteuid();
  // git as root under sudo checks ownership against SUDO_UID.
  if (uid === 0 && env.SUDO_UID !== undefined) return ASK_GIT;
  // git works from the real path of its working directory, as getcwd() gives it.
  let at = realpathSync(dir);
  const device = statSync(at).dev;
  for (;;) {
    const dotGit = statOrUndefined(join(at, ".git"));
    if (dotGit) {
      const head = dotGit.isDirectory() ? headOfGitDir(join(at, ".git"), at, dotGit, uid) : headOfGitFile(join(at, ".git"), at, dotGit, uid);
      // Without git on PATH the spawn fails: no commit, as before.
      return head === ASK_GIT || gitOnPath(env, dir) ? head : undefined;
    }
    // The folder may itself be a bare repository (git checks for HEAD in it).
    if (statOrUndefined(join(at, "HEAD"))) return ASK_GIT;
    const parent = dirname(at);
    // Not a repository up to the root or to a mount point, where git stops looking: git fails, if it runs at all.
    if (parent === at || statSync(parent).dev !== device) return undefined;
    at = parent;
  }
}

/** A `.git` file (a linked worktree's, a submodule's): `gitdir: PATH`, the repository's folder for this checkout. */
function headOfGitFile(gitFile: string, workTree: string, gitFileStats: Stats, uid: number): string | typeof ASK_GIT {
  if (!gitFileStats.isFile() || gitFileStats.uid !== uid) return ASK_GIT;
  const path = /^gitdir: (.+)$/.exec(readFileSync(gitFile, "utf8").replace(/\r?\n$/, ""))?.[1];
  if (path === undefined) return ASK_GIT;
  const gitDir = resolve(workTree, path);
  const stats = statSync(gitDir);
  return stats.isDirectory() ? headOfGitDir(gitDir, workTree, stats, uid) : ASK_GIT;
}

function headOfGitDir(gitDir: string, workTree: string, gitDirStats: Stats, uid: number): string | typeof ASK_GIT {
  // git refuses a repository another user owns unless safe.directory says otherwise: it decides.
  if (gitDirStats.uid !== uid || statSync(workTree).uid !== uid) return ASK_GIT;
  // A linked worktree's folder keeps its HEAD; the branches, objects and config are the main repository's (its `commondir`).
  const common = readOrUndefined(join(gitDir, "commondir"))?.replace(/\r?\n$/, "");
  const commonDir = common === undefined ? gitDir : resolve(gitDir, common);
  // A folder without these is no repository to git, which then looks further up.
  if (!statOrUndefined(join(commonDir, "objects"))?.isDirectory() || !statOrUndefined(join(commonDir, "refs"))?.isDirectory()) return ASK_GIT;
  const config = readFileSync(join(commonDir, "config"), "utf8");
  if (/^\s*\[\s*(?:extensions|include|includeif)\b/im.test(config)) return ASK_GIT;
  const version = /^\s*repositoryformatversion\s*=\s*(\S+)/im.exec(config)?.[1];
  if (version !== undefined && version !== "0" && version !== "1") return ASK_GIT;
  const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
  if (OBJECT_ID.test(head)) return head;
  const ref = /^ref: (refs\/\S+)$/.exec(head)?.[1];
  if (!ref || ref.split("/").some((part) => part === "" || part === "." || part === "..")) return ASK_GIT;
  // Refs kept per worktree (refs/worktree/, refs/bisect/, refs/rewritten/) are not looked for here.
  if (/^refs\/(?:worktree|bisect|rewritten)\//.test(ref)) return ASK_GIT;
  const loose = readOrUndefined(join(commonDir, ref))?.trim();
  if (loose !== undefined) return OBJECT_ID.test(loose) ? loose : ASK_GIT;
  const packed = readOrUndefined(join(commonDir, "packed-refs"));
  for (const line of packed?.split("\n") ?? []) {
    const [id, name] = line.trim().split(" ");
    if (name === ref && id !== undefined && OBJECT_ID.test(id)) return id;
  }
  return ASK_GIT; // an unborn branch: git says so, and fails
}

/** Whether spawning `git` would find it (PATH searched as execvp does; an unset PATH throws: git decides). */
function gitOnPath(env: NodeJS.ProcessEnv, cwd: string): boolean {
  if (env.PATH === undefined) throw new Error("no PATH");
  for (const folder of env.PATH.split(delimiter)) {
    const file = join(folder || cwd, "git");
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return true;
    } catch {
      // not there
    }
  }
  return false;
}

function statOrUndefined(path: string): Stats | undefined {
  return statSync(path, { throwIfNoEntry: false });
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
