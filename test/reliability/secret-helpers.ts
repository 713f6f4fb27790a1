/**
 * Shared by the secret tests: a secret made of every character class that serialisers
 * escape, the forms it can take in text, and a search of every file under a folder.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type Exit, start } from "../cache/helpers.ts";

export const repo = resolve(import.meta.dirname, "../..");
export const bin = join(repo, "packages/cli/bin/cairn.mjs");
export const fixture = (name: string) => join(repo, "test/fixtures", name);

/** A quote, a backslash, a newline, non-ASCII and an emoji (two UTF-16 units). */
export const WEIRD = 'p"a\\ss\nwörd-🔑-end';
/** A quote beside what HTML escapes: nbconvert escapes `<`, `>`, `&` in a cell's text output and leaves the quote. */
export const HTML_WEIRD = 'pa<ss"wo&rd>-1';

/** Every form in which `secret` could be written: raw, JSON-escaped (JS and Python's ensure_ascii), HTML-escaped, and its lines. */
export function formsOf(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const ascii = json.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  const escaped = secret.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
  const html = [escaped, escaped.replaceAll('"', "&quot;"), escaped.replaceAll('"', "&#34;"), secret.replaceAll('"', "&quot;"), secret.replaceAll('"', "&#34;")];
  return [...new Set([secret, json, ascii, ...html, ...html.map((h) => JSON.stringify(h).slice(1, -1)), ...secret.split("\n")])];
}

/** Files under `dir` (recursively) whose bytes contain one of `forms`, as `file: form`. */
export async function filesContaining(dir: string, forms: string[]): Promise<{ hits: string[]; files: string[] }> {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const hits: string[] = [];
  for (const file of files) {
    const bytes = await readFile(file);
    for (const form of forms) if (bytes.includes(Buffer.from(form))) hits.push(`${file}: ${JSON.stringify(form)}`);
  }
  return { hits, files };
}

/** The forms of `secret` that `text` contains. */
export const formsIn = (text: string, secret: string) => formsOf(secret).filter((f) => text.includes(f));

/** The first 9 characters in a row of `secret` that `text` holds (enough to be a part worth guarding), or undefined. */
export function secretPartIn(text: string, secret: string): string | undefined {
  const parts = new Set<string>();
  for (let i = 0; i + 9 <= secret.length; i++) parts.add(secret.slice(i, i + 9));
  for (let i = 0; i + 9 <= text.length; i++) if (parts.has(text.slice(i, i + 9))) return text.slice(i, i + 9);
  return undefined;
}

export type { Exit };

/** Runs the real `cairn` CLI in `cwd`; MLflow variables are dropped unless `env` sets them. */
export function cairn(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  const full: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete full.MLFLOW_TRACKING_URI;
  Object.assign(full, env);
  return start(process.execPath, [bin, ...args], { cwd, env: full }).done;
}

/** The tasks of secret-leaks.flow.ts that must fail with SecretLeakError. */
export const REFUSED = ["leak-output", "leak-nested", "leak-key", "leak-json-text", "leak-metric-key", "leak-param-key", "leak-tag"];
