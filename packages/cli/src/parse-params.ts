import { ParamError, validateParams, validateWithSchema, type FlowDefinition } from "@cairn/core";
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
 */
export async function parseParams(definition: FlowDefinition, pairs: readonly string[]): Promise<Record<string, unknown>> {
  const raw = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`Expected -p name=value, got "-p ${pair}".`);
    const name = pair.slice(0, eq);
    // Assigned into an object, `__proto__` would set its prototype: the param would vanish without a word.
    if (name === "__proto__") {
      throw new UsageError(`Expected -p name=value with a param name, got "-p ${pair}": \`__proto__\` cannot be a param's name (it is JavaScript's name for an object's prototype). Rename the param.`);
    }
    if (raw.has(name)) {
      throw new UsageError(`Expected one -p ${name}=..., got two (\`-p ${name}=${raw.get(name)}\`, \`-p ${pair}\`): which value was meant cannot be told. Give -p ${name} once.`);
    }
    raw.set(name, pair.slice(eq + 1));
  }
  const schema = definition.paramsSchema;
  const readings = new Map([...raw].map(([k, v]) => [k, readingsOf(v, schema !== undefined)]));
  // Which reading of each value is in play; the schema moves a value it rejects on to its next one.
  const chosen = new Map([...raw.keys()].map((k) => [k, 0]));
  const current = (): Record<string, unknown> => {
    const params: Record<string, unknown> = {};
    for (const [k, r] of readings) params[k] = r.values[chosen.get(k)!];
    return params;
  };
  let params = current();
  if (schema) {
    for (;;) {
      const r = await validateWithSchema(schema, params);
      if (r.ok) break;
      const rejected = [...new Set(r.paths.map((p) => p.split(".")[0]!))].filter((k) => raw.has(k));
      const next = rejected.filter((k) => chosen.get(k)! < readings.get(k)!.values.length - 1);
      if (!next.length) {
        // Rejected every way: the error is about the JSON reading (`-p trees=0`: "must be >= 1",
        // not "expected a number").
        for (const k of rejected) chosen.set(k, readings.get(k)!.errorReading);
        params = current();
        break;
      }
      for (const k of next) chosen.set(k, chosen.get(k)! + 1);
      params = current();
    }
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
    const given = error.param !== undefined && raw.has(error.param) ? ` (got -p ${error.param}=${raw.get(error.param)})` : "";
    throw new ParamError(`${error.message}${given}`, error.flowName, error.param);
  }
}

/** The readings of one `-p` value, in the order the schema is offered them, and the one an error is about. */
interface Readings {
  values: unknown[];
  errorReading: number;
}

function readingsOf(value: string, hasSchema: boolean): Readings {
  if (value === "") return { values: [value], errorReading: 0 };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { values: [value], errorReading: 0 };
  }
  if (typeof json === "string") return { values: [json], errorReading: 0 };
  if (typeof json === "number" && String(json) !== value) {
    if (hasSchema) return { values: [value, json], errorReading: 1 };
    // An integer JSON cannot hold (`12345678901234567890` reads as ...000): the text is what was meant.
    return /^\s*-?\d+\s*$/.test(value) && !Number.isSafeInteger(json) ? { values: [value], errorReading: 0 } : { values: [json], errorReading: 0 };
  }
  return { values: [json, value], errorReading: 0 };
}
