/**
 * Which Cairn this is: its version and the commit it was packed from, "0.1.0+57ab83a". Two
 * packs of different commits carry one package version, so the version alone cannot tell an
 * upgraded install from the old one; what must agree (a coordinator and its workers) or what a
 * record should name (a flow run's `cairn.version` tag, the writer of a cache entry) uses this.
 *
 * `scripts/pack.sh` writes the commit (with "-dirty" when the tree had changes) into each
 * packed package's `dist/build.json`, beside this module's compiled file. Cairn running from
 * this workspace's sources has no such file: its build is "workspace" (the code of a
 * workspace's tasks is compared by its own fingerprint, not by this).
 */
import { readFileSync } from "node:fs";

/** Cairn's version and build, as `cairn --version` prints them. */
export interface CairnBuild {
  /** The package version, "0.1.0": what a dependency range names. */
  readonly version: string;
  /** The commit it was packed from, "57ab83a" or "57ab83a-dirty"; "workspace" when run from sources. */
  readonly commit: string;
  /** Both, "0.1.0+57ab83a": what two processes compare to know they run the same Cairn. */
  readonly id: string;
}

/** The flow run's tag naming the Cairn that ran it, "0.1.0+57ab83a". */
export const VERSION_TAG = "cairn.version";

/** Read once a process: a file of a few bytes, and an install does not change under a running process. */
let known: CairnBuild | undefined;

/**
 * This Cairn's version and build. `CAIRN_TEST_BUILD` stands in for the commit: Cairn's own tests
 * start a worker "of another build" with it; nothing else should set it.
 */
export function cairnBuild(env: NodeJS.ProcessEnv = process.env): CairnBuild {
  known ??= readBuild();
  const override = env.CAIRN_TEST_BUILD;
  return override ? { ...known, commit: override, id: `${known.version}+${override}` } : known;
}

function readBuild(): CairnBuild {
  const version = readJson<{ version?: unknown }>("../package.json")?.version;
  const commit = readJson<{ commit?: unknown }>("./build.json")?.commit;
  const v = typeof version === "string" ? version : "unknown";
  const c = typeof commit === "string" && commit ? commit : "workspace";
  return { version: v, commit: c, id: `${v}+${c}` };
}

/** A JSON file beside this module (src/ in the workspace, dist/ installed); undefined when it is absent or unreadable. */
function readJson<T>(relative: string): T | undefined {
  try {
    return JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as T;
  } catch {
    return undefined;
  }
}
