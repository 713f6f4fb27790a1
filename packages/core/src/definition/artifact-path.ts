/**
 * The one rule for names that become paths. An artifact name comes from a task
 * (`ctx.artifacts.write/path/file`), a script's outputs (`{"$artifact": name}`), a cache
 * entry or an MLflow artifact listing; each is joined to a folder Cairn owns (a run's
 * artifacts, the downloads folder). Every such join goes through {@link safeRelativePath},
 * which accepts only a normalised relative path, so that no name, however it arrives,
 * reaches outside the folder it is joined to. The rule is strict rather than clever: a name
 * Cairn would have to rewrite to make safe (`a/../b`, `./a`, `a//b`) is refused, not fixed,
 * because the rewritten name would not be what the writer meant.
 */
import { UnsafePathError } from "../errors.ts";

/** Where a name came from, for the error: the task, and the API or record that carried it. */
export interface PathSource {
  /** The task (its node id in the flow), when the name belongs to one. */
  readonly taskName?: string | undefined;
  /** What carried the name, e.g. `ctx.artifacts.write()`, `script output "model"`. */
  readonly source: string;
}

/**
 * The common case in one test: parts that hold no separator, NUL or ":" and are not "." or
 * "..". Anything else (a `\`, a drive, a ":") takes the slow path below.
 */
const PART = String.raw`(?:[^/\\\0.:][^/\\\0:]*|\.[^/\\\0.:][^/\\\0:]*|\.\.[^/\\\0:]+)`;
const PLAIN = new RegExp(`^${PART}(?:/${PART})*$`);

/**
 * `name` as a normalised relative path (`a/b/c.txt`, "/" between parts; a `\` counts as a
 * separator, as it does on Windows), or throws {@link UnsafePathError} naming the task and the
 * name. Refused: a non-string or empty name; a NUL; an absolute path (`/x`), a drive (`C:x`,
 * `C:\x`) or a UNC path (`\\server\share`); a `..`, `.` or empty part (`a//b`, a trailing `/`).
 * @example
 * join(artifactsDir, ...safeRelativePath(name, { taskName: "load", source: "ctx.artifacts.write()" }).split("/"))
 */
export function safeRelativePath(name: unknown, from: PathSource): string {
  // Most names are plain (`data.csv`, `logs/stdout.txt`): one regular expression, no allocation.
  if (typeof name === "string" && PLAIN.test(name)) return name;
  const fail = (reason: string): never => {
    throw new UnsafePathError(name, reason + suggestion(name), from.source, from.taskName);
  };
  if (typeof name !== "string") return fail("is not a string");
  if (name === "") return fail("is empty");
  if (name.includes("\0")) return fail("contains a NUL character");
  if (/^[\\/]{2}/.test(name)) return fail("is a UNC path (\\\\server\\share)");
  if (/^[\\/]/.test(name)) return fail("is an absolute path");
  if (/^[A-Za-z]:/.test(name)) return fail(`starts with a drive ("${name.slice(0, 2)}")`);
  const parts = name.split(/[\\/]/);
  for (const part of parts) {
    if (part === "..") return fail('climbs out with ".."');
    if (part === ".") return fail('has a "." part');
    if (part === "") return fail('has an empty part ("//" or a trailing "/")');
  }
  // Left: a name whose only oddity is `\` as a separator, or a ":" after the first character.
  return parts.join("/");
}

/** The folder of each run that holds Cairn's own record of it (its outputs manifest, inputs, error, graph, report). */
export const RECORD_FOLDER = "cairn";

/**
 * Where the files a failed attempt left are kept, "/"-separated: `cairn/attempts/<n>`, in the
 * run's folder (a retry moves them there locally) and on an MLflow server (where they are sent),
 * never at its top level, which holds the successful attempt's outputs alone.
 */
export function attemptFolder(attempt: number): string {
  return `${RECORD_FOLDER}/attempts/${attempt}`;
}

/**
 * A name a task gives its artifact (`ctx.artifacts.*`, a script's `{"$artifact": name}`): a
 * {@link safeRelativePath} outside {@link RECORD_FOLDER}, where Cairn's own files would
 * overwrite it (`cairn/outputs.json` is written after the task's outputs), that an MLflow
 * server stores under that very name ({@link unstorableOnMlflow}).
 */
export function taskArtifactPath(name: unknown, from: PathSource): string {
  const path = safeRelativePath(name, from);
  // In any case: on a case-insensitive file system (macOS, Windows) `Cairn/` is `cairn/`.
  if (path.split("/", 1)[0]!.toLowerCase() === RECORD_FOLDER) {
    throw new UnsafePathError(name, `is in "${RECORD_FOLDER}/", the folder of Cairn's own record of the run (its outputs manifest, inputs and error), where it would be overwritten; use another folder`, from.source, from.taskName);
  }
  const unstorable = unstorableOnMlflow(path);
  if (unstorable) throw new UnsafePathError(name, unstorable, from.source, from.taskName);
  return path;
}

/**
 * The artifact path of a file (or the `kind` of entry named in the words) a task left on disk: `entry`, its "/"-separated path in the folder
 * whose artifact path is `folder` (a folder artifact; "" for the artifacts folder itself). Checked
 * as {@link taskArtifactPath} checks a name the task gives, and more, because each file is
 * uploaded under this path and, when the folder is downloaded, the server's listing of it is
 * checked relative to the folder:
 * - `entry` alone passes {@link safeRelativePath}: `a:colon.txt` in folder `ds` is `ds/a:colon.txt`
 *   here, but "starts with a drive" where the download checks it;
 * - no `\`: on disk it is a character of the name, which an MLflow server reads as "/" (it
 *   stores `back\slash.txt` as `back/slash.txt`, where the run's record does not say).
 * A name a task gives (`ctx.artifacts.write("a\\b.txt")`) is another matter: there a `\` is a
 * separator, and the file is written at `a/b.txt`.
 */
export function taskFilePath(entry: string, folder: string, from: PathSource, kind: "file" | "folder" | "link" = "file"): string {
  const path = folder ? `${folder}/${entry}` : entry;
  if (entry.includes("\\")) {
    throw new UnsafePathError(
      path,
      `holds "\\" in a ${kind}'s name, which an MLflow server reads as "/" (it would store the ${kind} as ${JSON.stringify(path.replaceAll("\\", "/"))}, where the run's record does not say); rename the ${kind} (e.g. with "_" in its place)`,
      from.source,
      from.taskName,
    );
  }
  if (folder) {
    try {
      safeRelativePath(entry, from);
    } catch (error) {
      if (!UnsafePathError.is(error)) throw error;
      throw new UnsafePathError(path, `is a ${kind} whose name in its folder ${JSON.stringify(folder)} ${error.reason}, which Cairn refuses when it downloads the folder (a cache hit on another machine); rename the ${kind}`, from.source, from.taskName);
    }
  }
  return taskArtifactPath(path, from);
}

/**
 * Why an MLflow server would not keep the artifact path `path` under that very name, or
 * undefined when it would. Its artifact endpoints (upload, download, list) decode a path until
 * it stops changing and parse it as a URL, so however Cairn encodes the name: a "#" is refused
 * (HTTP 400), a "%" and two hex digits is decoded (`a%20b` is stored as `a b`, `x%2fy` as
 * `x/y`, another artifact's place), a control character is dropped, rewritten or refused, and
 * a trailing "?" or ";" (an empty query or parameter) is dropped. A renamed file is not where
 * the run's record says, so the run's hits would find it missing. Checked for a task's names
 * whatever the store, so that a flow that runs on the embedded store runs on a server too.
 */
export function unstorableOnMlflow(path: string): string | undefined {
  // Most names hold none of these characters: one test.
  if (!UNSTORABLE_CHARACTERS.test(path)) return undefined;
  const fix = "; rename the artifact (e.g. with \"_\" in its place)";
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(path)?.[0];
  if (control !== undefined) {
    const code = `U+${control.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    return `holds a control character (${code}), which an MLflow server drops, rewrites or refuses in an artifact path${fix}`;
  }
  if (path.includes("#")) return `holds "#", which an MLflow server refuses in an artifact path (HTTP 400 "Invalid path")${fix}`;
  const escape = /%[0-9A-Fa-f]{2}/.exec(path)?.[0];
  if (escape !== undefined) {
    const byte = Number.parseInt(escape.slice(1), 16);
    const to = byte < 0x80 ? ` (to ${JSON.stringify(String.fromCharCode(byte))})` : "";
    return `holds "${escape}", which an MLflow server decodes${to}, so it would store the file under another name${fix}`;
  }
  if (/[?;]$|;\?/.test(path)) return `ends with "?" or ";" (or has ";" before "?"), which an MLflow server drops from an artifact path, so it would store the file under another name${fix}`;
  return undefined;
}

/** Any character that {@link unstorableOnMlflow} may object to. */
const UNSTORABLE_CHARACTERS = /[\u0000-\u001f\u007f-\u009f#%?;]/;

/** `name` as one safe path part (no separator at all): a run id or a file name that is joined as one folder level. */
export function safePathSegment(name: unknown, from: PathSource): string {
  const safe = safeRelativePath(name, from);
  if (safe.includes("/")) throw new UnsafePathError(name, "is more than one path part", from.source, from.taskName);
  return safe;
}

/** `; use "a/b" instead` when dropping "." and empty parts gives a safe name; "" otherwise. */
function suggestion(name: unknown): string {
  if (typeof name !== "string" || /^[\\/]|^[A-Za-z]:|\0/.test(name)) return "";
  const parts = name.split(/[\\/]/).filter((p) => p !== "" && p !== ".");
  return parts.length && !parts.includes("..") ? `; use "${parts.join("/")}" instead` : "";
}
