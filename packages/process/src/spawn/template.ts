/**
 * MLproject-style command templates: `python train.py --lr {lr} --data {data}`.
 *
 * - `{name}` (letters, digits, `_`, `-`) is a placeholder, replaced by the input `name`.
 * - In a shell command every value is shell-quoted, so a value is always one literal
 *   word and never shell code. A placeholder where that quoting would not hold is
 *   refused: inside quotes (the quoting would be undone), in a here-document's body
 *   (`<<EOF` still runs `$(...)`; `<<'EOF'` would keep Cairn's quotes as text), inside
 *   backticks (the shell undoes backslashes there before it reads quotes, and bash ends
 *   the substitution at a backquote in the value), and where the shell evaluates the
 *   quoted value as an arithmetic expression, whose array subscripts run `$(...)`:
 *   `$((...))`, `((...))`, `$[...]`, an operand of `-eq`...`-ge` or `-v` in `[[ ]]`, an
 *   array subscript (`${a[...]}`, `${#a[...]}`, `a[...]=`, `unset a[...]`, `a=([...]=v)`) and a
 *   `${v:offset:length}`.
 * - A `#` at the start of a word begins a shell comment: quotes there mean nothing, and a
 *   placeholder there is refused, since its value would never reach the command.
 * - `{{name}}` is a literal `{name}`; `${VAR}` and any other braces (awk, brace
 *   expansion) are left as they are.
 */
import { isArtifact, shellQuote } from "@cairn/core";
import { CommandTemplateError, UnknownPlaceholderError } from "./errors.ts";

type Part = { text: string } | { placeholder: string };

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** A parsed template. */
export interface CommandTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
  /** Placeholder names, in order of first use. */
  readonly placeholders: readonly string[];
}

/** A here-document whose body starts after the current line: `<<EOF`, `<<-EOF`, `<<'EOF'`. */
interface HereDoc {
  /** The redirection as written, e.g. `<<'EOF'`. */
  readonly written: string;
  readonly delimiter: string;
  /** `<<-`: leading tabs are stripped from body lines, the delimiter's line included. */
  readonly dash: boolean;
  /** Any part of the word quoted: the body is not expanded. */
  readonly quoted: boolean;
}

/** Characters that end a shell word (besides blanks and newlines). */
const OPERATOR = new Set([";", "&", "|", "(", ")", "<", ">"]);

/** Operators of `[[ ]]` whose operands bash evaluates as arithmetic expressions (`-v`: a name whose array subscript it evaluates). */
const ARITHMETIC_TEST = new Set(["-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v"]);

/** A word that is a placeholder alone: its value may be an operator. */
const PLACEHOLDER_WORD = /^\{[A-Za-z_][A-Za-z0-9_-]*\}$/;

/**
 * Parses a template. With `shell: true`, refuses placeholders inside single or double
 * quotes, in a here-document's body, in a comment, inside backticks or in an arithmetic
 * expression, where the quoting of values would not protect them or they would never be used.
 */
export function parseTemplate(source: string, taskName: string, options: { shell: boolean }): CommandTemplate {
  const parts: Part[] = [];
  const placeholders: string[] = [];
  let text = "";
  let quote: "'" | '"' | undefined;
  let comment = false;
  /** Open `((`/`$((` parentheses: `<<` there is a shift, not a here-document, and a value is an expression. */
  let arithmetic = 0;
  /** Open `$[`/`[` brackets of bash's old `$[...]` arithmetic. */
  let brackets = 0;
  /** Where an open `[[` starts, or -1. */
  let test = -1;
  /** Inside `...`. */
  let backtick = false;
  /** Array subscripts and `${v:...}` offsets seen so far, which bash evaluates as arithmetic. */
  const evaluated: EvaluatedSpan[] = [];
  let escaped = -1; // index of the last backslash-escaped character
  const pending: HereDoc[] = [];
  const refuse = (detail: string): never => {
    throw new CommandTemplateError(taskName, source, detail);
  };
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (options.shell) {
      if (!comment && !backtick && !quote && (c === "$" || c === "[")) {
        evaluated.push(...evaluatedSpans(source, i, escaped));
      }
      if (comment) {
        if (c === "\n") comment = false;
      } else if (backtick) {
        // Up to the next backquote not escaped, whatever quotes lie between (as sh and bash read it).
        if (c === "`") backtick = false;
        else if (c === "\\") {
          text += c + (source[i + 1] ?? "");
          i++;
          escaped = i;
          continue;
        }
      } else if (quote === "'") {
        if (c === "'") quote = undefined;
      } else if (c === "\\") {
        // An escaped character is literal; copy it with the backslash.
        text += c + (source[i + 1] ?? "");
        i++;
        escaped = i;
        continue;
      } else if (c === "`") {
        backtick = true;
      } else if (c === quote) {
        quote = undefined;
      } else if (!quote && (c === "'" || c === '"')) {
        quote = c;
      } else if (!quote && c === "#" && wordStart(source, i, escaped)) {
        comment = true;
      } else if (!quote && c === "(" && (arithmetic > 0 || source[i + 1] === "(")) {
        arithmetic++;
      } else if (!quote && c === ")" && arithmetic > 0) {
        arithmetic--;
      } else if (!quote && test < 0 && c === "[" && source[i + 1] === "[" && wordStart(source, i, escaped) && /^[ \t\n]/.test(source[i + 2] ?? "")) {
        test = i;
      } else if (!quote && test >= 0 && c === "]" && source[i + 1] === "]" && wordStart(source, i, escaped) && wordEnd(source, i + 2)) {
        test = -1;
      } else if (!quote && c === "[" && (brackets > 0 || (source[i - 1] === "$" && escaped !== i - 1))) {
        brackets++;
      } else if (!quote && c === "]" && brackets > 0) {
        brackets--;
      } else if (!quote && !arithmetic && !brackets && c === "<" && source[i + 1] === "<" && source[i + 2] !== "<" && source[i - 1] !== "<") {
        const doc = hereDoc(source, i);
        if (doc) pending.push(doc);
      }
      if (c === "\n" && !quote && !backtick && pending.length) {
        // The bodies of this line's here-documents follow it, one after the other.
        text += c;
        i = hereDocBodies(source, i + 1, pending.splice(0), (line, doc, lineNumber) => {
          text += bodyLine(line, doc, lineNumber, refuse);
        });
        continue;
      }
    }
    if (c === "{") {
      // `{{name}}` -> literal `{name}`
      if (source[i + 1] === "{") {
        const end = source.indexOf("}}", i + 2);
        if (end > 0 && IDENT.test(source.slice(i + 2, end))) {
          text += `{${source.slice(i + 2, end)}}`;
          i = end + 1;
          continue;
        }
      }
      const end = source.indexOf("}", i + 1);
      const name = end > 0 ? source.slice(i + 1, end) : "";
      if (source[i - 1] !== "$" && IDENT.test(name)) {
        if (comment) {
          refuse(
            `the placeholder {${name}} is in a shell comment (after the "#" on line ${lineOf(source, i)}), so its value would never reach ` +
              `the command. Move it out of the comment, write {{${name}}} for a literal "{${name}}", or escape the "#" as "\\#" if it is not meant to start a comment.`,
          );
        }
        if (quote) {
          refuse(
            `the placeholder {${name}} is inside ${quote === "'" ? "single" : "double"} quotes. Remove the quotes ` +
              `around it: Cairn quotes every value itself, and quoting it again would let the value run as shell code.`,
          );
        }
        if (backtick) {
          refuse(
            `the placeholder {${name}} is inside backticks (\`...\`), where the shell removes backslashes before it reads the quotes ` +
              `Cairn puts around the value, and bash ends the substitution at a backquote in the value, whose rest then runs as shell code. ` +
              `Write $(...) instead of backticks, e.g. $(echo {${name}}).`,
          );
        }
        if (arithmetic > 0 || brackets > 0) {
          const variable = name.replaceAll("-", "_");
          refuse(
            `the placeholder {${name}} is inside an arithmetic expression (${arithmetic > 0 ? "$((...)) or ((...))" : "$[...]"}), where the shell ` +
              `evaluates the quoted value as an expression: a value such as x[$(cmd)] runs cmd. Pass the value in a variable and check that it is ` +
              `a number before the arithmetic, e.g. ${variable}={${name}}; case $${variable} in ''|*[!0-9]*) echo "not a whole number: $${variable}" >&2; exit 2;; esac; ` +
              `echo $(( ${variable} * 2 )), or compute it in the flow and pass the result.`,
          );
        }
        const span = evaluated.find((s) => s.from < i && end < s.to);
        if (span) {
          const variable = name.replaceAll("-", "_");
          const check = `${variable}={${name}}; case $${variable} in ''|*[!0-9]*) echo "not a whole number: $${variable}" >&2; exit 2;; esac; `;
          refuse(
            `the placeholder {${name}} is ${span.what} ${span.written} (line ${lineOf(source, i)}), where bash evaluates the quoted value ` +
              `as an arithmetic expression: a value such as x[$(cmd)] runs cmd. Pass the value in a variable and check that it is a whole number ` +
              `first, then use the variable there, e.g. ${check}${span.instead(`$${variable}`)}` +
              (span.what === "in the offset or length of"
                ? "."
                : ` (an associative array's key needs no check: ${variable}={${name}}; ${span.instead(`$${variable}`)}).`),
          );
        }
        if (test >= 0) {
          const operator = testNeighbour(source, test, i, end);
          if (operator) {
            refuse(
              `the placeholder {${name}} is ${PLACEHOLDER_WORD.test(operator) ? `next to ${operator}, which may be an operator such as -gt,` : `an operand of ${operator}`} ` +
                `inside [[ ... ]] (line ${lineOf(source, i)}), where bash evaluates the quoted value as an arithmetic expression: a value such as x[$(cmd)] runs cmd. ` +
                (operator === "-v"
                  ? `To test whether the variable it names is set, check the name first (a [ -v ] evaluates its subscript too): ` +
                    `v={${name}}; case $v in ''|*[!A-Za-z0-9_]*) echo "not a variable name: $v" >&2; exit 2;; esac; [[ -v $v ]]`
                  : `Compare numbers with [ ] instead, which reads them as plain integers: [ {${name}} -gt 0 ].`),
            );
          }
        }
        if (text) parts.push({ text });
        text = "";
        parts.push({ placeholder: name });
        if (!placeholders.includes(name)) placeholders.push(name);
        i = end;
        continue;
      }
    }
    text += c;
  }
  if (quote && options.shell) {
    refuse(`a ${quote === "'" ? "single" : "double"} quote is not closed.`);
  }
  if (backtick && options.shell) refuse("a backtick (`) is not closed.");
  if (text) parts.push({ text });
  return { source, parts, placeholders };
}

/** A part of the template that bash evaluates as an arithmetic expression. */
interface EvaluatedSpan {
  /** Indexes of the characters before and after the part. */
  readonly from: number;
  readonly to: number;
  /** What the part is, e.g. "in the array subscript of". */
  readonly what: string;
  /** The expansion or assignment as written, its part elided: `${a[...]}`. */
  readonly written: string;
  /** The expansion or assignment with `value` in the part, as the message advises writing it. */
  readonly instead: (value: string) => string;
}

/** What precedes an argument of `unset` on its command: `unset`, then options or other names. */
const UNSET_ARGUMENT = /(?:^|[;&|()\n])[ \t]*unset[ \t]+(?:[^;&|()\n]*[ \t])?$/;

/**
 * The array name when `source[i]` lies inside a compound assignment's parentheses,
 * `a=( ... )`, `a+=( ... )` (also after `declare -a`), else undefined.
 */
function compoundAssignment(source: string, i: number): string | undefined {
  let depth = 0;
  for (let k = i - 1; k >= 0; k--) {
    if (source[k] === ")") depth++;
    else if (source[k] === "(" && depth-- === 0) return /(?:^|[ \t\n;&|(])([A-Za-z_][A-Za-z0-9_]*)\+?=$/.exec(source.slice(0, k))?.[1];
  }
  return undefined;
}

/**
 * The subscript and offset that bash evaluates as arithmetic in the parameter expansion
 * (`${a[...]}`, `${#a[...]}`, `${!a[...]}`, `${v:...}`, `${a[...]:...}`) or the assignment
 * (`a[...]=`, `a[...]+=`, `a=( [...]=... )`) or the `unset a[...]` starting at `source[i]`
 * (its `$`, or the subscript's `[`); none for anything else.
 */
function evaluatedSpans(source: string, i: number, escaped: number): EvaluatedSpan[] {
  if (source[i] === "[" && wordStart(source, i, escaped)) {
    // `[...]=` inside a compound assignment `a=( ... )`: bash evaluates the subscript as it does in `a[...]=`.
    const name = compoundAssignment(source, i);
    const close = name ? closing(source, i, "[", "]") : -1;
    if (!name || close < 0) return [];
    const op = source[close + 1] === "=" ? "=" : source.startsWith("+=", close + 1) ? "+=" : undefined;
    if (!op) return [];
    return [{ from: i, to: close, what: "in a subscript of the compound assignment", written: `${name}=( [...]${op}... )`, instead: (v) => `${name}=([${v}]${op}...)` }];
  }
  if (source[i] === "[") {
    const name = /[A-Za-z_][A-Za-z0-9_]*$/.exec(source.slice(0, i))?.[0];
    if (!name || !wordStart(source, i - name.length, escaped)) return [];
    const close = closing(source, i, "[", "]");
    if (close < 0) return [];
    const op = source[close + 1] === "=" ? "=" : source.startsWith("+=", close + 1) ? "+=" : undefined;
    if (op) return [{ from: i, to: close, what: "in the subscript of the assignment", written: `${name}[...]${op}`, instead: (v) => `${name}[${v}]${op}...` }];
    if (!UNSET_ARGUMENT.test(source.slice(0, i - name.length))) return [];
    // Single quotes: unset expands the subscript itself, once, so even an associative array's key is not run.
    return [{ from: i, to: close, what: "in the subscript of", written: `unset ${name}[...]`, instead: (v) => `unset '${name}[${v}]'` }];
  }
  if (source[i + 1] !== "{") return [];
  const spans: EvaluatedSpan[] = [];
  const open = i + 1;
  let j = open + 1;
  const prefix = source[j] === "#" || source[j] === "!" ? source[j]! : "";
  j += prefix.length;
  const name = /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])/.exec(source.slice(j))?.[0] ?? "";
  j += name.length;
  let subscript = "";
  if (source[j] === "[") {
    const close = closing(source, j, "[", "]");
    if (close < 0) return [];
    spans.push({ from: j, to: close, what: "in the array subscript of", written: `\${${prefix}${name}[...]}`, instead: (v) => `echo "\${${prefix}${name}[${v}]}"` });
    subscript = source.slice(j, close + 1);
    j = close + 1;
  }
  if (source[j] === ":" && !"-=?+".includes(source[j + 1] ?? "-")) {
    const close = closing(source, open, "{", "}");
    if (close < 0) return spans;
    const base = `${prefix}${name}${subscript}`;
    spans.push({ from: j, to: close, what: "in the offset or length of", written: `\${${base}:...}`, instead: (v) => `echo "\${${base}:${v}}"` });
  }
  return spans;
}

/** The index of the `close` that matches the `open` at `source[i]`, or -1. */
function closing(source: string, i: number, open: string, close: string): number {
  let depth = 0;
  for (let k = i; k < source.length; k++) {
    if (source[k] === open) depth++;
    else if (source[k] === close && --depth === 0) return k;
  }
  return -1;
}

/** True when `source[i]` starts a shell word: first, or after a blank, newline or operator that is not escaped. */
function wordStart(source: string, i: number, escaped: number): boolean {
  if (i === 0) return true;
  const before = source[i - 1]!;
  return escaped !== i - 1 && (before === " " || before === "\t" || before === "\n" || OPERATOR.has(before));
}

/** True when a word ends before `source[i]`: at the end, or before a blank, newline or operator. */
function wordEnd(source: string, i: number): boolean {
  const c = source[i];
  return c === undefined || c === " " || c === "\t" || c === "\n" || OPERATOR.has(c);
}

/**
 * The word next to the placeholder `source.slice(at, end + 1)` inside the `[[` at `test`
 * that makes bash evaluate it as arithmetic: an operator of {@link ARITHMETIC_TEST}, or a
 * placeholder alone, whose value may be one. Undefined when neither neighbour is.
 */
function testNeighbour(source: string, test: number, at: number, end: number): string | undefined {
  const before = source.slice(test + 2, at).split(/[ \t\n]+/);
  const after = source.slice(end + 1).split(/[ \t\n]+/);
  // before's last piece and after's first are the rest of the placeholder's own word.
  return [before.at(-2), after[1]].find((w) => w !== undefined && (ARITHMETIC_TEST.has(w) || PLACEHOLDER_WORD.test(w)));
}

/** The here-document redirection starting at `source[i] === "<<"`, or undefined when no word follows. */
function hereDoc(source: string, i: number): HereDoc | undefined {
  let j = i + 2;
  const dash = source[j] === "-";
  if (dash) j++;
  while (source[j] === " " || source[j] === "\t") j++;
  let delimiter = "";
  let quoted = false;
  let quote: string | undefined;
  for (; j < source.length; j++) {
    const c = source[j]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else delimiter += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      quoted = true;
    } else if (c === "\\") {
      quoted = true;
      delimiter += source[++j] ?? "";
    } else if (c === " " || c === "\t" || c === "\n" || OPERATOR.has(c)) {
      break;
    } else {
      delimiter += c;
    }
  }
  if (!delimiter && !quoted) return undefined;
  return { written: source.slice(i, j), delimiter, dash, quoted };
}

/**
 * Hands each body line of `docs` (in order, starting at `from`) to `onLine`, delimiter
 * lines included, and returns the index of the last character consumed.
 */
function hereDocBodies(source: string, from: number, docs: readonly HereDoc[], onLine: (line: string, doc: HereDoc | undefined, lineNumber: number) => void): number {
  let at = from;
  for (const doc of docs) {
    while (at < source.length) {
      const newline = source.indexOf("\n", at);
      const end = newline < 0 ? source.length : newline + 1;
      const line = source.slice(at, end);
      const bare = line.endsWith("\n") ? line.slice(0, -1) : line;
      const closes = (doc.dash ? bare.replace(/^\t+/, "") : bare) === doc.delimiter;
      onLine(line, closes ? undefined : doc, lineOf(source, at));
      at = end;
      if (closes) break;
    }
  }
  return at - 1;
}

/**
 * One line of a here-document body (`doc` undefined for the delimiter line): `{{name}}`
 * becomes `{name}`, a placeholder is refused.
 */
function bodyLine(line: string, doc: HereDoc | undefined, lineNumber: number, refuse: (detail: string) => never): string {
  if (!doc) return line;
  return line.replace(/(\$?)\{(\{?)([A-Za-z_][A-Za-z0-9_-]*)\}(\}?)/g, (all, dollar: string, open: string, name: string, close: string) => {
    if (dollar) return all; // ${VAR}
    if (open && close) return `{${name}}`;
    const variable = name.replaceAll("-", "_");
    return refuse(
      `the placeholder {${name}} is in the body of the here-document ${doc.written} (line ${lineNumber}), ` +
        (doc.quoted
          ? `where nothing is expanded: the value would arrive with Cairn's shell quotes as part of the text. `
          : `where the shell still runs $(...) and backticks, so Cairn's quoting cannot keep the value from running as shell code. `) +
        `Pass the value as an argument or an environment variable instead, and read it in the body, e.g. ` +
        `${variable}={${name}} python - <<'${doc.delimiter || "EOF"}' with os.environ["${variable}"] (or "$${variable}" in a shell body).`,
    );
  });
}

/** The 1-based line of `source[i]`. */
function lineOf(source: string, i: number): number {
  let n = 1;
  for (let k = 0; k < i; k++) if (source[k] === "\n") n++;
  return n;
}

/** Throws UnknownPlaceholderError for the first placeholder `available` does not name. */
export function checkPlaceholders(template: CommandTemplate, available: readonly string[], taskName: string): void {
  for (const p of template.placeholders) {
    if (!available.includes(p)) throw new UnknownPlaceholderError(taskName, p, available);
  }
}

/** Renders a shell command: every value shell-quoted (arrays become one quoted word per element). */
export function renderShell(template: CommandTemplate, values: Record<string, unknown>, taskName: string): string {
  return render(template, values, taskName, (v) => (Array.isArray(v) ? v.map((e) => shellQuote(valueText(e))).join(" ") : shellQuote(valueText(v))));
}

/** Renders one argv argument (no shell involved, so no quoting). */
export function renderArg(template: CommandTemplate, values: Record<string, unknown>, taskName: string): string {
  return render(template, values, taskName, valueText);
}

function render(template: CommandTemplate, values: Record<string, unknown>, taskName: string, format: (v: unknown) => string): string {
  const available = Object.keys(values).filter((k) => values[k] !== undefined);
  checkPlaceholders(template, available, taskName);
  return template.parts.map((p) => ("text" in p ? p.text : format(values[p.placeholder]))).join("");
}

/** The text a value stands for in a command: strings as they are, artifacts as their path, other data as JSON. */
export function valueText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null || value === undefined) return "";
  if (isArtifact(value)) return value.path;
  return JSON.stringify(value);
}

/** One POSIX shell word (@cairn/core's, which the queue's hints use too). */
export { shellQuote };
