/**
 * Reading a `--secrets FILE`: Node's dotenv parser (`util.parseEnv`), checked line by line
 * against a strict reading of the same syntax.
 *
 * Node's parser never complains: a quoted value ends at the next quote of its kind (`\"` is not
 * an escape) and the rest of the line is dropped, an unquoted value ends at any `#`, and a line
 * it does not understand merges into the next key. Each of those silently hands a task a cut
 * secret (too short to be masked, often), so a file is read twice, by Node and by
 * {@link strictEntries}, and any line where the two disagree is refused with its number: never
 * with its value, which is a secret.
 */
import { parseEnv } from "node:util";
import { UsageError } from "./usage-error.ts";

/** One `KEY=VALUE` of the file as it is written. */
interface Entry {
  key: string;
  value: string;
  /** 1-based line where the entry starts. */
  line: number;
}

/** What a user must know to write the file. */
const SYNTAX =
  "Write one KEY=VALUE a line: a value quoted with ' or \" ends at the next quote of its kind (there are no escapes; \"\\n\" is a newline inside \"...\"), " +
  'a value with both kinds of quote goes in backticks (`it\'s "x"`), an unquoted value ends at " #" (a comment), and a quoted value may span lines.';

/** The secrets of `text`, read from `file`; throws UsageError naming the file and the line (never the value) where Node's parser would not read what is written. */
export function parseSecretsFile(file: string, content: string): Record<string, string> {
  // Node keeps a byte-order mark (a Windows editor's) as part of the first key.
  const text = content.replace(/^\uFEFF/, "");
  const refuse = (line: number | undefined, why: string) =>
    new UsageError(`The secrets file ${file}${line === undefined ? "" : `, line ${line},`} is not read as written: ${why} ${SYNTAX}`);
  const entries = strictEntries(text, refuse);
  const node = parseEnv(text) as Record<string, string>;
  const strict = new Map(entries.map((e) => [e.key, e]));
  // The strict reading is a subset of what Node reads: any difference left is one this reading missed, refused all the same.
  for (const [key, entry] of strict) {
    if (node[key] !== entry.value) throw refuse(entry.line, `Node's dotenv parser, which --secrets uses, reads the value of ${key} differently from how it is written.`);
  }
  if (Object.keys(node).some((key) => !strict.has(key))) throw refuse(undefined, "Node's dotenv parser, which --secrets uses, reads a key that is not written as KEY=VALUE.");
  return Object.fromEntries([...strict].map(([key, e]) => [key, e.value]));
}

/** Spaces (not tabs: Node keeps those) around the key, the "=" and the value. */
const ASSIGNMENT = /^ *(?:export +)?([\w.-]+) *=( *)(.*)$/;

/** The entries of `text` read by the strict rules of {@link SYNTAX}; `refuse` makes the error for a line that breaks them. */
function strictEntries(text: string, refuse: (line: number, why: string) => Error): Entry[] {
  const lines = text.split(/\r?\n/);
  const entries: Entry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (/^\s*(#.*)?$/.test(raw)) continue;
    const m = ASSIGNMENT.exec(raw);
    if (!m) throw refuse(i + 1, "it is not KEY=VALUE (a line that is not is merged into the next key).");
    const key = m[1]!;
    if (key === "__proto__") {
      throw refuse(i + 1, "a secret cannot be named __proto__: Node's dotenv parser, which --secrets uses, drops that key (JavaScript's name for an object's prototype), so no task could read it. Rename it.");
    }
    const spaced = m[2] !== "";
    const rest = m[3]!;
    const quote = rest[0];
    if (quote === '"' || quote === "'" || quote === "`") {
      // The value runs to the next quote of its kind, on this line or a later one.
      let body = rest.slice(1);
      let end = body.indexOf(quote);
      const start = i;
      while (end === -1 && i + 1 < lines.length) {
        body += `\n${lines[++i]!}`;
        end = body.indexOf(quote);
      }
      if (end === -1) throw refuse(start + 1, `the ${quote} that opens the value of ${key} is never closed.`);
      const after = body.slice(end + 1);
      if (!/^\s*(#.*)?$/.test(after)) {
        const escaped = body[end - 1] === "\\" ? ` (\\${quote} is not an escape)` : "";
        const where = i === start ? "" : ` (on line ${i + 1})`;
        throw refuse(
          start + 1,
          `the value of ${key} ends at the next ${quote}${escaped}${where}, and the text after it is dropped. ` +
            `To put a ${quote} in a value, quote it with ${quote === "`" ? "' or \"" : quote === '"' ? "' or backticks" : '" or backticks'}.`,
        );
      }
      const value = body.slice(0, end);
      entries.push({ key, value: quote === '"' ? value.replaceAll("\\n", "\n") : value, line: start + 1 });
      continue;
    }
    // An unquoted value: Node ends it at any "#", a comment only after a space.
    const hash = rest.indexOf("#");
    if (hash !== -1 && (hash === 0 ? !spaced : !/\s/.test(rest[hash - 1]!))) {
      throw refuse(i + 1, `the value of ${key} ends at its "#" (read as a comment), and the text after it is dropped. Quote the value.`);
    }
    entries.push({ key, value: (hash === -1 ? rest : rest.slice(0, hash)).replace(/ +$/, ""), line: i + 1 });
  }
  return entries;
}
