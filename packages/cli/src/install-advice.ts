/**
 * What Cairn tells a user to install, in the commands of the package manager that started it.
 * Until Cairn is on npm, `npm install cairn-dag` answers 404: where that would be the obvious
 * advice (init's install failed; a flow imports cairn-dag where it is not installed), the
 * advice is the tarballs that `pnpm pack:all DIR` makes in a clone of Cairn, the place an
 * installed `cairn` came from.
 */
import { packageManagerOf } from "@cairn/core";

export type PackageManager = ReturnType<typeof packageManagerOf>;

/** Whether `name` is one of Cairn's own packages, which are not on npm yet. */
export function isCairnPackage(name: string): boolean {
  return name === "cairn-dag" || name.startsWith("@cairn/");
}

/** The command that installs Cairn's tarballs from DIR into a project, with `pm`. */
export function cairnTarballsCommand(pm: PackageManager): string {
  if (pm === "npm") return "npm install DIR/*.tgz";
  if (pm === "pnpm") return "pnpm add DIR/cairn-dag-*.tgz   # with pnpm.overrides for the @cairn/* tarballs, as the README shows";
  return "yarn add DIR/cairn-dag-*.tgz";
}

/**
 * Cairn's packages `names` are not installed beside the flow `file`: a `cairn` installed globally
 * from the tarballs, run in a folder without them. What to install, since `npm install cairn-dag`
 * answers 404 until Cairn is on npm.
 */
export function cairnNotInstalled(names: readonly string[], file: string, env: NodeJS.ProcessEnv): string {
  return (
    `${names.join(", ")} ${names.length === 1 ? "is" : "are"} not installed where the flow is, and Cairn is not on npm yet (\`npm install cairn-dag\` answers 404): ` +
    `install in the project beside ${file} the tarballs this cairn came from, which \`pnpm pack:all DIR\` makes in a clone of Cairn (README: "Until it is on npm"): ` +
    cairnTarballsCommand(packageManagerOf(env))
  );
}

/** The Cairn package a failed import names as not found (Node's CommonJS and ES module wordings), if it names one. */
export function missingCairnPackage(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code !== "MODULE_NOT_FOUND" && code !== "ERR_MODULE_NOT_FOUND") return undefined;
  const name = /^Cannot find (?:module|package) '((?:@[^/']+\/)?[^/']+)/.exec((error as Error).message)?.[1];
  return name !== undefined && isCairnPackage(name) ? name : undefined;
}
