/**
 * MLproject-style command templates: `python train.py --lr {lr} --data {data}`.
 *
 * - `{name}` (letters, digits, `_`, `-`) is a placeholder, replaced by the input `name`.
 * - In a shell command every value is shell-quoted, so a value is always one literal
 *   word and never shell code; a placeholder inside quotes in the template is refused,
 *   because quoting there would be undone.
 * - `{{name}}` is a literal `{name}`; `${VAR}` and any other braces (awk, brace
 *   expansion) are left as they are.
 */
import { isArtifact } from "@cairn/core";
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

/**
 * Parses a template. With `shell: true`, refuses placeholders inside single or double
 * quotes, where the quoting of values would not protect them.
 */
export function parseTemplate(source: string, taskName: string, options: { shell: boolean }): CommandTemplate {
  const parts: Part[] = [];
  const placeholders: string[] = [];
  let text = "";
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (options.shell) {
      if (quote === "'") {
        if (c === "'") quote = undefined;
      } else if (c === "\\") {
        // An escaped character is literal; copy it with the backslash.
        text += c + (source[i + 1] ?? "");
        i++;
        continue;
      } else if (c === quote) {
        quote = undefined;
      } else if (!quote && (c === "'" || c === '"')) {
        quote = c;
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
        if (quote) {
          throw new CommandTemplateError(
            taskName,
            source,
            `the placeholder {${name}} is inside ${quote === "'" ? "single" : "double"} quotes. Remove the quotes ` +
              `around it: Cairn quotes every value itself, and quoting it again would let the value run as shell code.`,
          );
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
    throw new CommandTemplateError(taskName, source, `a ${quote === "'" ? "single" : "double"} quote is not closed.`);
  }
  if (text) parts.push({ text });
  return { source, parts, placeholders };
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

/** Quotes `s` as one POSIX shell word; plain words stay readable. */
export function shellQuote(s: string): string {
  if (s === "") return "''";
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
