/**
 * The source map a compiled module names at its end (`//# sourceMappingURL=flow.js.map`, as
 * tsc writes with `sourceMap`, or a `data:` URL, with `inlineSourceMap`), and the one source
 * it maps from. What the code analysis needs to read a module tsc compiled as the TypeScript
 * it was compiled from; pure, the reading of files is its caller's.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const COMMENT = "//# sourceMappingURL=";

/**
 * Where a module's source map is. `file`: the file its sources are resolved against, the map's
 * (for an inline map, the module's own); `inline`: an inline map's text, else the map is `file`'s.
 */
export interface SourceMapPlace {
  readonly file: string;
  readonly inline?: string;
}

/** The source map named by the last line of a module's text; undefined when it names none, or a URL that is not a file or data. */
export function sourceMapPlace(moduleFile: string, text: string): SourceMapPlace | undefined {
  const at = text.lastIndexOf(COMMENT);
  if (at < 0 || (at > 0 && text[at - 1] !== "\n")) return undefined;
  const url = text.slice(at + COMMENT.length).trim();
  // The comment counts only as the module's last line (a string holding it is no source map).
  if (!url || /\s/.test(url)) return undefined;
  const data = /^data:application\/json(?:;charset=[\w-]+)?(;base64)?,/i.exec(url);
  if (data) {
    const payload = url.slice(data[0].length);
    try {
      return { file: moduleFile, inline: data[1] ? Buffer.from(payload, "base64").toString("utf8") : decodeURIComponent(payload) };
    } catch {
      return undefined;
    }
  }
  if (url.startsWith("file:")) return { file: fileURLToPath(url) };
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return undefined; // http: and the like: nothing on this disk
  try {
    return { file: resolve(dirname(moduleFile), decodeURIComponent(url)) };
  } catch {
    return undefined;
  }
}

/** A source map's payload, as far as this reads it. */
export interface SourceMapPayload {
  version: number;
  sources: string[];
  sourceRoot?: string;
  mappings: string;
}

/** The parsed map; undefined when the text is not a source map. */
export function parseSourceMap(text: string): SourceMapPayload | undefined {
  try {
    const payload = JSON.parse(text) as Partial<SourceMapPayload>;
    const ok = payload.version === 3 && typeof payload.mappings === "string" && Array.isArray(payload.sources) && payload.sources.every((s) => typeof s === "string");
    return ok ? (payload as SourceMapPayload) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The path of the one source a map names (tsc writes one per module), resolved as the spec
 * says (against the map's folder, after `sourceRoot`); undefined when it names several, or a
 * URL that is not a file.
 */
export function onlySource(payload: SourceMapPayload, mapFile: string): string | undefined {
  if (payload.sources.length !== 1) return undefined;
  const source = payload.sources[0]!;
  if (source.startsWith("file:")) return fileURLToPath(source);
  const root = typeof payload.sourceRoot === "string" ? payload.sourceRoot : "";
  if (/^[a-z][a-z0-9+.-]*:/i.test(root) && !root.startsWith("file:")) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(source) && !isAbsolute(source)) return undefined; // webpack://, http:
  const base = root.startsWith("file:") ? fileURLToPath(root) : resolve(dirname(mapFile), root);
  return resolve(base, source);
}

/**
 * The map at `place` and the one source it names: an inline map's own text, else `mapText`, its
 * file's as the caller read it (none: undefined). The one lookup of the code analysis's reader
 * of compiled modules (async, memoized per run) and of its resolver of imports the CLI compiled
 * (sync, inline maps); undefined when the text is no map, or names no one source.
 * @example
 * const found = place && mappedSource(place, place.inline === undefined ? await read(place.file) : undefined);
 */
export function mappedSource(place: SourceMapPlace, mapText?: string): { payload: SourceMapPayload; source: string } | undefined {
  const payload = parseSourceMap(place.inline ?? mapText ?? "");
  const source = payload && onlySource(payload, place.file);
  return payload && source !== undefined ? { payload, source } : undefined;
}
