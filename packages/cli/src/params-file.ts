/**
 * `--params-file FILE` of `cairn run`, `plan` and `explain`: a flow's params from a file, as
 * Airflow's `--conf`, Dagster's run config and Prefect's parameters files give them. JSON, or
 * YAML when the name ends in `.yaml` or `.yml`; the top level is an object of param values by
 * name. It is read where the flag enters, before the flow loads: a file that is missing, does
 * not parse or holds no object is said without running any of the flow's code. Its values go
 * under the `-p` ones and are checked as they are (parseParams). An error quotes where the
 * file goes wrong (line, column) and why, never the file's text: it could hold a secret.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parseDocument } from "yaml";
import { jsonSyntaxError, type ParamsFile } from "./parse-params.ts";
import { UsageError } from "./usage-error.ts";

const FORMATS = "a JSON file, or YAML named .yaml or .yml, holding an object of param values by name";

/**
 * Reads the params file `file` (a path as given, relative to the working directory).
 * @example
 * readParamsFile("params.yaml"); // { file: "params.yaml", values: { dates: ["2026-01-01"] } }
 */
export function readParamsFile(file: string): ParamsFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`Cannot read the params file ${file} (--params-file): ${(error as Error).message}. Pass ${FORMATS}: {"dates": ["2026-01-01"]}.`, { cause: error });
  }
  const yaml = [".yaml", ".yml"].includes(extname(file).toLowerCase());
  const values = yaml ? fromYaml(file, text) : fromJson(file, text);
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    const got = values === null || values === undefined ? "nothing (an empty document, or null)" : Array.isArray(values) ? "an array" : `a ${typeof values}`;
    const example = yaml ? "dates: [2026-01-01]" : '{"dates": ["2026-01-01"]}';
    throw new UsageError(`Expected the params file ${file} (--params-file) to hold an object of param values by name (${example}), got ${got} at its top level.`);
  }
  // Assigned into the params, `__proto__` would set their prototype: the param would vanish without a word.
  if (Object.hasOwn(values, "__proto__")) {
    throw new UsageError(`Expected param names in the params file ${file} (--params-file), got \`__proto__\`: it cannot be a param's name (it is JavaScript's name for an object's prototype). Rename the param.`);
  }
  return { file, values: values as Record<string, unknown> };
}

function fromJson(file: string, text: string): unknown {
  try {
    // A byte-order mark, as Windows editors and PowerShell 5's `Out-File -Encoding utf8` write one, is no content.
    return JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (error) {
    // Node 22 adds "(line 1 column 5)" itself; the place is said once, counted here.
    const reason = jsonSyntaxError(text, error).replace(/\s*\(line \d+ column \d+\)$/, "");
    const at = /at position (\d+)$/.exec(reason);
    const place = at ? ` (${lineColumn(text, Number(at[1]))})` : /Unexpected end/.test(reason) ? ` (${lineColumn(text, text.length)}: the file ends first)` : "";
    throw new UsageError(`The params file ${file} (--params-file) is not valid JSON: ${reason}${place}. Fix it; a file named .yaml or .yml is read as YAML.`, { cause: error });
  }
}

function fromYaml(file: string, text: string): unknown {
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    // The first line is the reason and its place; the lines after it quote the file.
    const reason = error.message.split("\n")[0]!.replace(/:$/, "");
    throw new UsageError(`The params file ${file} (--params-file) is not valid YAML: ${reason}. Fix it; a file not named .yaml or .yml is read as JSON.`, { cause: error });
  }
  let values: unknown;
  try {
    values = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    // An alias to no anchor (`*token`), one that expands too far: said by place, never quoting the file.
    const at = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    const kind = error instanceof ReferenceError ? "an alias (`*name`) names no anchor (`&name`) before it" : "its aliases cannot be read as values";
    throw new UsageError(`The params file ${file} (--params-file) is not valid YAML: ${kind}${at ? ` (line ${at.line}, column ${at.col})` : ""}. Fix it; a file not named .yaml or .yml is read as JSON.`);
  }
  // An alias inside its own anchor (`a: &x [*x]`) is a cycle, which no param value can be; a `!!binary` is bytes.
  const refused = unfitYamlValue(values, new Set());
  if (refused) throw new UsageError(`The params file ${file} (--params-file) holds ${refused}, which no param value can be. Write the value out.`);
  return values;
}

/** What in `value` a param cannot hold (a cycle, bytes), in words, or undefined. */
function unfitYamlValue(value: unknown, open: Set<unknown>): string | undefined {
  if (value instanceof Uint8Array) return "a `!!binary` value (bytes)";
  if (typeof value !== "object" || value === null) return undefined;
  if (open.has(value)) return "a value that holds itself (an alias inside its own anchor)";
  open.add(value);
  for (const item of value instanceof Map ? value.values() : Object.values(value)) {
    const found = unfitYamlValue(item, open);
    if (found) return found;
  }
  open.delete(value);
  return undefined;
}

/** `line 2, column 5` of the character at `position` (both from 1). */
function lineColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  return `line ${line}, column ${position - before.lastIndexOf("\n")}`;
}
