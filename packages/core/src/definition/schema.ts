import type { StandardSchemaV1 } from "@standard-schema/spec";

/** Result of validating with a Standard Schema: the (possibly transformed) value, or readable issues. */
export type SchemaResult =
  | { ok: true; value: unknown }
  | {
      ok: false;
      issues: string[];
      paths: string[];
      /**
       * Whether each issue says the value is of another type than the schema's (zod's
       * `invalid_type`, valibot's schema issues, arktype's `domain`), as far as the issue tells:
       * `false` for a value of the right type that fails a check (a regex, a minimum), and for a
       * library whose issues say neither.
       */
      wrongType: boolean[];
    };

/** Validates `value` with any Standard Schema (zod, valibot, arktype, ...). */
export async function validateWithSchema(schema: StandardSchemaV1, value: unknown): Promise<SchemaResult> {
  let result = schema["~standard"].validate(value);
  if (result instanceof Promise) result = await result;
  if (!result.issues) return { ok: true, value: result.value };
  const paths = result.issues.map((issue) => issuePath(issue));
  return {
    ok: false,
    paths,
    wrongType: result.issues.map(isWrongType),
    issues: result.issues.map((issue, i) => (paths[i] ? `${paths[i]}: ${issue.message}` : issue.message)),
  };
}

function isWrongType(issue: StandardSchemaV1.Issue): boolean {
  // Standard Schema's issues carry a message and a path only; these are the libraries' own fields.
  const i = issue as { code?: unknown; kind?: unknown };
  return i.code === "invalid_type" || i.kind === "schema" || i.code === "domain";
}

function issuePath(issue: StandardSchemaV1.Issue): string {
  return (issue.path ?? [])
    .map((seg) => String(typeof seg === "object" && seg !== null ? seg.key : seg))
    .join(".");
}

/**
 * Keys an object schema requires, when the schema exposes its shape (zod's
 * `shape`, valibot's `entries`): a key is required when its own schema rejects
 * `undefined`. Undefined when the shape is not visible; then only run-time
 * validation can tell.
 */
export function requiredKeys(schema: StandardSchemaV1): string[] | undefined {
  const s = schema as unknown as { shape?: unknown; entries?: unknown };
  const shape = (isObject(s.shape) ? s.shape : isObject(s.entries) ? s.entries : undefined) as
    | Record<string, unknown>
    | undefined;
  if (!shape) return undefined;
  const required: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    const std = (field as Partial<StandardSchemaV1> | undefined)?.["~standard"];
    if (!std) continue;
    const r = std.validate(undefined);
    if (!(r instanceof Promise) && r.issues) required.push(key);
  }
  return required;
}

/** Keys an object schema knows about, when visible. */
export function knownKeys(schema: StandardSchemaV1): string[] | undefined {
  const s = schema as unknown as { shape?: unknown; entries?: unknown };
  const shape = isObject(s.shape) ? s.shape : isObject(s.entries) ? s.entries : undefined;
  return shape ? Object.keys(shape) : undefined;
}

function isObject(v: unknown): v is object {
  return typeof v === "object" && v !== null;
}
