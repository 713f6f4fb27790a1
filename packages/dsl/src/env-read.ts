/**
 * How a function task reads `process.env` itself, found from the function's text: the variables
 * it reads by a literal name (`process.env.SCALE`, `process.env["SCALE"]`, with or without `?.`),
 * so that their values enter the task's cache key as declared ones do (TaskDefinition.envRead): a
 * task that reads `SCALE` computed with one value is no hit for a machine that has another; and
 * whether it also reads it in a way whose names the text does not show (a computed name,
 * `process.env[name]`; a destructuring, `const { SCALE } = process.env`; `process.env` handed
 * on), which no key can follow (TaskDefinition.envReadUnnamed), so that a run whose `env`
 * differs from `process.env` can still warn of it. Only the function's own text is read: what a
 * helper it calls reads is not followed (declare those with `.env()`). Errs towards more: a
 * literal read in a comment or a string counts too.
 */

/** What a function's text reads from `process.env`. */
export interface EnvReads {
  /** The variables it reads by a literal name, sorted, each once. */
  readonly names: readonly string[];
  /** It also reads `process.env` otherwise (a computed name, a destructuring, handed on whole): by names its text does not show. */
  readonly unnamed: boolean;
}

/** `process.env.NAME`, `process.env?.NAME`, `process.env["NAME"]`, `process.env?.['NAME']`, `` process.env[`NAME`] ``. */
const LITERAL_READ = /\bprocess\s*\.\s*env\s*(?:\?\.\s*|\.\s*)([A-Za-z_$][\w$]*)|\bprocess\s*\.\s*env\s*(?:\?\.\s*)?\[\s*(["'`])([^"'`\\$\s=]+)\2\s*\]/g;

/** `process.env` itself, however it is then used. */
const ANY_READ = /\bprocess\s*\.\s*env\b/;

/** How `fnText` reads `process.env`: the names it reads by a literal name, and whether it reads it otherwise too. */
export function envReadBy(fnText: string): EnvReads {
  if (!fnText.includes("env")) return NONE;
  const names = new Set<string>();
  for (const m of fnText.matchAll(LITERAL_READ)) names.add((m[1] ?? m[3])!);
  // What is left once every literal read is taken out reads by a name the text does not show.
  const unnamed = ANY_READ.test(fnText.replace(LITERAL_READ, ""));
  return { names: [...names].sort(), unnamed };
}

const NONE: EnvReads = Object.freeze({ names: Object.freeze([]), unnamed: false });
