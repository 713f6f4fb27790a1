import { ParamError, validateParams, validateWithSchema, type FlowDefinition } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/**
 * Turns `-p key=value` pairs into flow params. Values are read as JSON when they
 * parse (numbers, booleans, arrays) and as strings otherwise; where the schema
 * rejects the JSON reading of a value, its string reading is tried, so
 * `-p tag=123` still works for a string param.
 */
export async function parseParams(definition: FlowDefinition, pairs: readonly string[]): Promise<Record<string, unknown>> {
  const raw: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`Expected -p name=value, got "-p ${pair}".`);
    raw[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const params: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) params[k] = readValue(v);
  const schema = definition.paramsSchema;
  if (schema) {
    // Where the schema rejects the JSON reading of a value, fall back to its string reading, key by key.
    const swapped = new Set<string>();
    for (;;) {
      const r = await validateWithSchema(schema, params);
      if (r.ok) break;
      const swap = r.paths.map((p) => p.split(".")[0]!).filter((k) => k in raw && typeof params[k] !== "string");
      if (!swap.length) {
        // Rejected either way: the error is about the JSON reading (`-p trees=0`: "must be >= 1",
        // not "expected a number").
        for (const p of r.paths) {
          const k = p.split(".")[0]!;
          if (swapped.has(k)) params[k] = readValue(raw[k]!);
        }
        break;
      }
      for (const k of swap) {
        params[k] = raw[k];
        swapped.add(k);
      }
    }
  }
  try {
    return await validateParams(definition, params);
  } catch (error) {
    if (!ParamError.is(error)) throw error;
    const given = error.param && error.param in raw ? ` (got -p ${error.param}=${raw[error.param]})` : "";
    throw new ParamError(`${error.message}${given}`, error.flowName, error.param);
  }
}

function readValue(value: string): unknown {
  if (value === "") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
