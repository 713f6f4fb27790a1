import { knownKeys, ParamError, shellQuote, validateParams, validateWithSchema, type FlowDefinition, type SchemaResult } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/**
 * Turns `-p key=value` pairs into flow params, as read (the run applies the params schema:
 * its defaults and transforms). Values are read as JSON when they
 * parse (numbers, booleans, arrays) and as strings otherwise; where the schema
 * rejects the JSON reading of a value, its string reading is tried, so
 * `-p tag=123` still works for a string param.
 *
 * A number whose text is not the one JSON prints for it (`1.10`, `1e3`, `007`, or
 * `12345678901234567890`, past what a double holds exactly) is offered to the schema
 * as its text first, then as the number: a string param (`z.coerce.string()`, or a
 * union of string and number) keeps `1.10` as typed instead of `1.1`, and a number
 * param still takes it. Without a schema there is nothing to ask, and the number is
 * taken, unless reading it loses digits of an integer: then the text is.
 *
 * A value the schema rejects every way is reported about the reading whose failure is more
 * than its type (`-p r=123` for a `z.string().regex()`: the regex's error, not "expected
 * string, received number"); a text that is not JSON and is refused for its type says why JSON
 * could not read it and how to write it. An empty `-p name=` is refused: most often an unset
 * shell variable. `options.file`'s values (`--params-file`) go under the `-p` ones, checked
 * the same way.
 */
export async function parseParams(definition: FlowDefinition, pairs: readonly string[], options: ParseParamsOptions = {}): Promise<Record<string, unknown>> {
  const raw = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`Expected -p name=value, got "-p ${pair}".`);
    const name = pair.slice(0, eq);
    // Assigned into an object, `__proto__` would set its prototype: the param would vanish without a word.
    if (name === "__proto__") {
      throw new UsageError(`Expected -p name=value with a param name, got "-p ${pair}": \`__proto__\` cannot be a param's name (it is JavaScript's name for an object's prototype). Rename the param.`);
    }
    const value = pair.slice(eq + 1);
    // As the flags refuse `--task ""`: `-p date=$DATE` with DATE unset ran with "" without a word.
    if (value === "") {
      throw new UsageError(
        `Expected \`-p ${name}=VALUE\` to have a value, got an empty one (\`-p ${name}=${value}\`), often a shell variable that is not set. ` +
          `Give a value, or leave -p ${name} out for its default; to pass an empty string on purpose, write it as JSON: -p '${name}=""'.`,
      );
    }
    if (raw.has(name)) {
      throw new UsageError(`Expected one -p ${name}=..., got two (\`-p ${name}=${raw.get(name)}\`, \`-p ${pair}\`): which value was meant cannot be told. Give -p ${name} once.`);
    }
    raw.set(name, value);
  }
  const file = options.file;
  const schema = definition.paramsSchema;
  const readings = new Map([...raw].map(([k, v]) => [k, readingsOf(v, schema !== undefined)]));
  // Which reading of each value is in play; the schema moves a value it rejects on to its next one.
  const chosen = new Map([...raw.keys()].map((k) => [k, 0]));
  const current = (): Record<string, unknown> => {
    const params: Record<string, unknown> = {};
    // The file's values first: a -p of the same name replaces its value.
    if (file) for (const [k, v] of Object.entries(file.values)) if (!raw.has(k)) params[k] = v;
    for (const [k, r] of readings) params[k] = r.values[chosen.get(k)!];
    return params;
  };
  let params = current();
  let failed: Extract<SchemaResult, { ok: false }> | undefined;
  if (schema) {
    for (;;) {
      const r = await validateWithSchema(schema, params);
      if (r.ok) break;
      const rejected = [...new Set(r.paths.map(rootOf))].filter((k) => raw.has(k));
      const next = rejected.filter((k) => chosen.get(k)! < readings.get(k)!.values.length - 1);
      if (!next.length) {
        // Rejected every way: the error is about the reading whose failure is more than its type
        // (`-p trees=0`: "must be >= 1", not "expected a number"; `-p r=123` for a regex: the regex's).
        for (const k of rejected) chosen.set(k, await errorReadingOf(schema, k, readings.get(k)!, chosen, current));
        params = current();
        const final = await validateWithSchema(schema, params);
        failed = final.ok ? undefined : final;
        break;
      }
      for (const k of next) chosen.set(k, chosen.get(k)! + 1);
      params = current();
    }
  }
  const given = (param: string | undefined): string => {
    if (param === undefined) return "";
    if (raw.has(param)) return ` (got -p ${param}=${raw.get(param)})`;
    if (!file || !Object.hasOwn(file.values, param)) return "";
    // Cut to a length, a value could hold part of a secret that masking the whole one would miss.
    const value = options.carriesSecret?.(file.values[param]) ? "a value that carries a secret of --secrets" : preview(file.values[param]);
    return ` (got ${value} for "${param}" in ${file.file})`;
  };
  // A param the schema does not know is said first, as validateParams says it; then the schema's issues.
  const known = schema ? knownKeys(schema) : undefined;
  if (failed && !(known && Object.keys(params).some((k) => !known.includes(k)))) {
    const message = await invalidParams(definition, failed, { raw, readings, chosen, given, file, params, carriesSecret: options.carriesSecret });
    throw new ParamError(message, definition.name, failed.paths[0] || undefined);
  }
  try {
    // Checked here, to quote the -p back in an error; handed on as read, not as the schema's
    // output: the run validates them again, and a `.transform()` must not run twice. Nothing
    // type-checked them against a `.params<T>()` type (run() callers are), so a param the flow
    // does not read is refused here even for a typed flow: `-p flg=true` is a typo.
    await validateParams(definition, params, "refuse");
    return params;
  } catch (error) {
    if (!ParamError.is(error)) throw error;
    throw new ParamError(`${error.message}${given(error.param)}`, error.flowName, error.param);
  }
}

/** Options of {@link parseParams}. */
export interface ParseParamsOptions {
  /** The values of `--params-file`, under the `-p` ones: a `-p` of the same name replaces one. */
  file?: ParamsFile;
  /** Whether a value carries a secret of `--secrets`: no rewriting of such a value is suggested (the caller masks the value as quoted). */
  carriesSecret?: ((value: unknown) => boolean) | undefined;
}

/** The params of a `--params-file`: the path as given, and its top-level values by name. */
export interface ParamsFile {
  file: string;
  values: Record<string, unknown>;
}

/** The param a schema issue's path is about: `dates` of `dates.1`. */
function rootOf(path: string): string {
  return path.split(".")[0]!;
}

/**
 * Which reading of param `k` an error is about, once the schema rejected each: its `errorReading`,
 * unless the schema refused that one for its type alone and another for something else.
 */
async function errorReadingOf(
  schema: NonNullable<FlowDefinition["paramsSchema"]>,
  k: string,
  r: Readings,
  chosen: Map<string, number>,
  current: () => Record<string, unknown>,
): Promise<number> {
  const typeOnly = async (i: number): Promise<boolean> => {
    chosen.set(k, i);
    const v = await validateWithSchema(schema, current());
    const mine = v.ok ? [] : v.wrongType.filter((_, j) => rootOf(v.paths[j]!) === k);
    return mine.length > 0 && mine.every(Boolean);
  };
  if (r.values.length < 2 || !(await typeOnly(r.errorReading))) return r.errorReading;
  for (let i = 0; i < r.values.length; i++) if (i !== r.errorReading && !(await typeOnly(i))) return i;
  return r.errorReading;
}

/** A file's value as an error quotes it: its JSON, cut to 80 characters. */
function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The message of a ParamError for params the schema rejects: each issue with where its value came
 * from (`-p`, the params file), what a missing param needs, and, for a `-p` text that is not JSON
 * and is refused for its type, why JSON could not read it and how to write it.
 */
async function invalidParams(
  definition: FlowDefinition,
  failed: Extract<SchemaResult, { ok: false }>,
  o: {
    raw: ReadonlyMap<string, string>;
    readings: ReadonlyMap<string, Readings>;
    chosen: ReadonlyMap<string, number>;
    given: (param: string) => string;
    file: ParamsFile | undefined;
    params: Record<string, unknown>;
    carriesSecret: ((value: unknown) => boolean) | undefined;
  },
): Promise<string> {
  const said = new Set<string>();
  const lines: string[] = [];
  for (let i = 0; i < failed.issues.length; i++) {
    const path = failed.paths[i]!;
    const k = rootOf(path);
    const issue = failed.issues[i]!;
    if (path === "" || said.has(k)) {
      lines.push(issue);
      continue;
    }
    said.add(k);
    if (!Object.hasOwn(o.params, k) && path === k) {
      const orFile = o.file ? `, or set "${k}" in ${o.file.file}` : "";
      lines.push(`${k}: missing (${issue.slice(k.length + 2)}): pass -p ${k}=VALUE${orFile}`);
      continue;
    }
    const r = o.readings.get(k);
    const text = o.raw.get(k);
    const asText = r?.notJson !== undefined && text !== undefined && r.values[o.chosen.get(k)!] === text;
    if (!asText || !failed.wrongType[i]) {
      lines.push(`${issue}${o.given(k)}`);
      continue;
    }
    const example = o.carriesSecret?.(text) ? undefined : await rewritten(definition, k, text, o.params);
    lines.push(
      `${issue}${o.given(k)}: it is not JSON (${r!.notJson}), so it was read as text. ` +
        (example !== undefined
          ? `Written as JSON, quoted for the shell: -p ${shellQuote(`${k}=${example}`)}`
          : `A list or an object is written as JSON, quoted for the shell: -p ${shellQuote(`${k}=["a","b"]`)}, -p ${shellQuote(`${k}={"a":1}`)}`),
    );
  }
  const typed = failed.paths.some((p) => o.raw.has(rootOf(p))) ? "\nValues of -p are read as JSON when they parse, else as text." : "";
  return `Flow "${definition.name}" got invalid params:\n  - ${lines.join("\n  - ")}${typed}`;
}

/**
 * The JSON a `-p` text the schema refused for its type likely meant, when the schema takes it: a
 * Python-style list quoted with `'`, or comma-separated values as a list (of strings, or numbers).
 */
async function rewritten(definition: FlowDefinition, k: string, text: string, params: Record<string, unknown>): Promise<string | undefined> {
  const schema = definition.paramsSchema;
  if (!schema) return undefined;
  const candidates: string[] = [];
  if (text.includes("'")) candidates.push(text.replaceAll("'", '"'));
  if (!/["'[\]{}]/.test(text)) {
    const parts = text.split(",").map((p) => p.trim());
    candidates.push(JSON.stringify(parts), JSON.stringify(parts.map((p) => (p !== "" && Number.isFinite(Number(p)) ? Number(p) : p))));
  }
  for (const candidate of candidates) {
    let value: unknown;
    try {
      value = JSON.parse(candidate);
    } catch {
      continue;
    }
    const r = await validateWithSchema(schema, { ...params, [k]: value });
    if (r.ok || !r.paths.some((p) => rootOf(p) === k)) return candidate;
  }
  return undefined;
}

/** The readings of one `-p` value, in the order the schema is offered them, and the one an error is about. */
interface Readings {
  values: unknown[];
  errorReading: number;
  /** Why JSON could not read the text, when it could not (worded without the text: it may hold a secret). */
  notJson?: string;
}

function readingsOf(value: string, hasSchema: boolean): Readings {
  if (value === "") return { values: [value], errorReading: 0 };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (error) {
    return { values: [value], errorReading: 0, notJson: jsonSyntaxError(value, error) };
  }
  if (typeof json === "string") return { values: [json], errorReading: 0 };
  if (typeof json === "number" && String(json) !== value) {
    if (hasSchema) return { values: [value, json], errorReading: 1 };
    // An integer JSON cannot hold (`12345678901234567890` reads as ...000): the text is what was meant.
    return /^\s*-?\d+\s*$/.test(value) && !Number.isSafeInteger(json) ? { values: [value], errorReading: 0 } : { values: [json], errorReading: 0 };
  }
  return { values: [json, value], errorReading: 0 };
}

/**
 * JSON.parse's reason for refusing `text`, without the excerpt of the text V8 puts in some
 * (`Unexpected token 'x', "x..." is not valid JSON`): cut to a length, the excerpt could hold
 * part of a secret that masking the whole value would miss. Where the reason gives no position,
 * it is found as the end of the longest start of `text` that JSON could still complete.
 */
export function jsonSyntaxError(text: string, error: unknown): string {
  const message = (error as Error).message;
  const echo = message.search(/, ".*"(\.\.\.)? is not valid JSON$/s);
  if (echo < 0) return message;
  const reason = message.slice(0, echo).replace(/ '.*'$/s, "");
  return `${reason} at position ${completableUpTo(text)}`;
}

/** The length of the longest start of `text` that is JSON, or could become JSON with more text after it. */
function completableUpTo(text: string): number {
  const completable = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return true;
    } catch (error) {
      const m = (error as Error).message;
      // Out of input: V8's "Unexpected end", or a position at the very end.
      return /Unexpected end of JSON input/.test(m) || new RegExp(`at position ${n}\\b`).test(m);
    }
  };
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (completable(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
