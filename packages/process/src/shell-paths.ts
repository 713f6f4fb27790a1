/**
 * The project's code files a shell text names literally: a `.sh` script's, a notebook's `%%bash`
 * cell or `!` line. Shell is not parsed; its words are read by their look, and a word counts
 * when it names a file of the project that exists now and is code (by its extension, see
 * CODE_EXTENSIONS): relative to the script's folder (also after `"$(dirname "$0")"/`,
 * `$(dirname $0)/`, `${BASH_SOURCE%/*}/`, which name that folder at run time), else relative to
 * the project's root. That errs towards counting: a word that only looks like a path (`echo
 * notes.py`) counts too. A word with a variable, a glob or a command substitution in it, an
 * absolute path (`/usr/bin/python3`, the system's, not the project's), the target of an output
 * redirection (`> out.log`, written rather than read) and a file of any other kind do not count.
 */
import { extname, join, relative, isAbsolute, sep } from "node:path";
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
 * The kinds of file a word counts for, by extension in any case (`.R` and `.r`): programs and
 * code a script runs. Not data, configs or outputs: a script names the files it writes as words
 * too (`--out model.bin`, `tee log.txt`, `-o out.json`), and one that existed when the key was
 * made would put the run's own output into its key, a miss on every run whose output differs.
 * The data and configs a script reads are declared with `.codeFiles()`.
 */
const CODE_EXTENSIONS: ReadonlySet<string> = new Set([".py", ".sh", ".bash", ".zsh", ".r", ".jl", ".pl", ".rb", ".js", ".mjs", ".cjs", ".ts", ".sql", ".awk", ".sed"]);

/**
 * The code files of the project (`project`, its root) that `text` names, as absolute paths; `here` is
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

/** The project's code file a word names, from the script's folder first, then from the project's root. */
function namedFile(word: string, here: string, project: string): string | undefined {
  if (!CODE_EXTENSIONS.has(extname(word).toLowerCase())) return undefined;
  if (word.startsWith(HERE)) return inProject(join(here, word.slice(HERE.length)), project);
  if (!word || NOT_LITERAL.test(word) || word.includes(HERE) || isAbsolute(word)) return undefined;
  return inProject(join(here, word), project) ?? inProject(join(project, word), project);
}

function inProject(path: string, project: string): string | undefined {
  const rel = relative(project, path);
  if (!rel || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  return isFile(path) ? path : undefined;
}
