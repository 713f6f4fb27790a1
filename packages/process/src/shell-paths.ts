/**
 * The project's files a shell text names literally: a `.sh` script's, a notebook's `%%bash`
 * cell or `!` line. Shell is not parsed; its words are read by their look, and a word counts
 * when it names a file of the project that exists now: relative to the script's folder (also
 * after `"$(dirname "$0")"/`, `$(dirname $0)/`, `${BASH_SOURCE%/*}/`, which name that folder at
 * run time), else relative to the project's root. That errs towards counting: a word that only
 * looks like a path (`echo notes.txt`) counts too. A word with a variable, a glob or a command
 * substitution in it, an absolute path (`/usr/bin/python3`, the system's, not the project's),
 * and the target of an output redirection (`> out.log`, written rather than read) do not count.
 */
import { join, relative, isAbsolute, sep } from "node:path";
import { isFile } from "@cairn/dsl/kind";

/** What `$(dirname "$0")`, `${BASH_SOURCE%/*}` and their spellings expand to, the script's folder: replaced by this before the words are split. */
const HERE = "\u0000";
const SCRIPT_DIR =
  /"?\$\(\s*dirname\s+"?\$(?:0|\{0\}|\{?BASH_SOURCE(?:\[0\])?\}?)"?\s*\)"?|"?\$\{(?:0|BASH_SOURCE(?:\[0\])?)%\/\*\}"?/g;
/** A comment: `#` at a line's start or after a blank, to the line's end. */
const COMMENT = /(^|[ \t])#[^\n]*/gm;
/** Words and output redirections (`>`, `>>`, `>|`); the shell's separators, `=` and backticks split words. */
const TOKEN = />>?\|?|[^\s;|&<>()`=]+/g;
/** What makes a word something other than a literal path: expansion, globbing, `~`, escapes. */
const NOT_LITERAL = /[$*?[\]{}~\\]/;

/**
 * The files of the project (`project`, its root) that `text` names, as absolute paths; `here` is
 * the folder of the script the text is in (a notebook's working directory for its cells).
 */
export function shellPaths(text: string, here: string, project: string): string[] {
  const found = new Set<string>();
  let redirected = false;
  for (const token of text.replace(SCRIPT_DIR, HERE).replace(COMMENT, "$1").match(TOKEN) ?? []) {
    if (token.startsWith(">")) {
      redirected = true;
      continue;
    }
    const word = token.replace(/["']/g, "");
    const target = !redirected && namedFile(word, here, project);
    redirected = false;
    if (target) found.add(target);
  }
  return [...found];
}

/** The project file a word names, from the script's folder first, then from the project's root. */
function namedFile(word: string, here: string, project: string): string | undefined {
  if (word.startsWith(HERE)) return inProject(join(here, word.slice(HERE.length)), project);
  if (!word || NOT_LITERAL.test(word) || word.includes(HERE) || isAbsolute(word)) return undefined;
  return inProject(join(here, word), project) ?? inProject(join(project, word), project);
}

function inProject(path: string, project: string): string | undefined {
  const rel = relative(project, path);
  if (!rel || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  return isFile(path) ? path : undefined;
}
