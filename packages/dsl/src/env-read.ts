/**
 * Which environment variables a function task reads from `process.env` itself, by a literal name
 * (`process.env.SCALE`, `process.env["SCALE"]`, with or without `?.`), found from the function's
 * text, so that their values enter the task's cache key as declared ones do
 * (TaskDefinition.envRead): a task that reads `SCALE` computed with one value is no hit for a
 * machine that has another. Only the function's own text is read: a computed name
 * (`process.env[name]`), a destructuring (`const { SCALE } = process.env`) and what a helper it
 * calls reads are not followed (declare those with `.env()`). Errs towards more names: a literal
 * read in a comment or a string counts too.
 */

/** `process.env.NAME`, `process.env?.NAME`, `process.env["NAME"]`, `process.env?.['NAME']`, `` process.env[`NAME`] ``. */
const LITERAL_READ = /\bprocess\s*\.\s*env\s*(?:\?\.\s*|\.\s*)([A-Za-z_$][\w$]*)|\bprocess\s*\.\s*env\s*(?:\?\.\s*)?\[\s*(["'`])([^"'`\\$\s=]+)\2\s*\]/g;

/** The names of the variables `fnText` reads from `process.env` by a literal name, sorted, each once. */
export function envReadBy(fnText: string): readonly string[] {
  if (!fnText.includes("env")) return NONE;
  const names = new Set<string>();
  for (const m of fnText.matchAll(LITERAL_READ)) names.add((m[1] ?? m[3])!);
  return names.size ? [...names].sort() : NONE;
}

const NONE: readonly string[] = Object.freeze([]);
