import { createHash, hash, scrypt, scryptSync } from "node:crypto";
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { lstat, readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import type ObjectHash from "object-hash";
import { isLeftOutName, recordedFiles, VIRTUALENV_MARK } from "./code-folder.ts";
import { CacheValueError } from "./errors.ts";

/**
 * Version of the cache key recipe. Bump it whenever the way a key is computed
 * changes, so old entries can never be mistaken for new ones.
 * 2: object-hash without `respectType` (prototypes and constructors no longer hashed).
 */
export const CACHE_SCHEMA_VERSION = 2;

// Values that reach a key are JSON-like (inputs must be serializable), so prototypes and
// constructors carry nothing: `respectType: false` leaves them out, which makes the canonical
// text four times shorter. "passthrough" makes object-hash return that text instead of feeding
// each token to a crypto hash; one sha256 of it is the digest object-hash's own
// `algorithm: "sha256"` gives (the hash of a stream is the hash of its concatenation).
// Together about a tenth of the default's time for a typical key (BENCHMARKS.md).
const OBJECT_HASH_OPTIONS = {
  algorithm: "passthrough",
  respectType: false,
  unorderedObjects: true,
  unorderedArrays: false,
  unorderedSets: true,
} as const;

/**
 * Canonical sha256 of any value (object-hash): the same across processes,
 * machines and object key orders; array order counts.
 *
 * @example
 * hashValue({ a: 1, b: 2 }) === hashValue({ b: 2, a: 1 }); // true
 */
export function hashValue(value: unknown): string {
  let text = canonicalText(value);
  if (text === undefined) {
    try {
      // Wrapped so that `undefined` (which object-hash refuses) hashes too.
      text = objectHash()({ value }, OBJECT_HASH_OPTIONS);
    } catch (error) {
      throw new CacheValueError("value", `object-hash could not hash it (${(error as Error).message})`, { cause: error });
    }
  }
  return sha256(hashableText(text));
}

let objectHashModule: typeof ObjectHash | undefined;

/**
 * object-hash, required on first use: {@link canonicalText} makes the text of every JSON-like
 * value itself, so most processes never need it, and imported as an ES module its CommonJS file
 * cost an installed `cairn run` ~3 ms before its first task (BENCHMARKS.md, twenty-ninth session).
 */
function objectHash(): typeof ObjectHash {
  return (objectHashModule ??= createRequire(import.meta.url)("object-hash") as typeof ObjectHash);
}

/** Starts the text hashed for a value holding a lone surrogate; the text of every value starts `object:`. */
const ILL_FORMED = "ill-formed-utf16:";

/**
 * The text to hash for a value's canonical text. sha256 hashes a string's UTF-8 bytes, and UTF-8
 * has no bytes for a lone surrogate (half of an emoji, as `s.slice(0, n)` leaves): each becomes
 * U+FFFD, so `"ab\uD83D"`, `"ab\uD83E"` and `"ab\uFFFD"` would share one key. A text with one is
 * hashed escaped instead (JSON escapes it as `\udXXX` and can be read back, so two texts never
 * meet), behind a prefix no value's text has. Every other value keeps its key, so the cache schema
 * version stays; canonicalText stays object-hash's text, for every value but -0 (see writeCanonical).
 */
function hashableText(text: string): string {
  // `isWellFormed` is ES2024 (Node 20), after the ES2023 library the project is typed with.
  return (text as string & { isWellFormed(): boolean }).isWellFormed() ? text : `${ILL_FORMED}${JSON.stringify(text)}`;
}

/** Thrown by {@link writeCanonical} at a value it leaves to object-hash. */
const NOT_PLAIN = Symbol("not plain");

/**
 * object-hash's passthrough text of `{ value }` with {@link OBJECT_HASH_OPTIONS}, character for
 * character (but for -0, which object-hash writes as 0), for JSON-like values (strings, numbers, booleans, null, undefined, arrays and
 * plain objects): what every task input and every key is. Made directly it costs a fraction of
 * object-hash's (which checks options, dispatches by name and matches a regular expression per
 * object); `undefined` for anything else (dates, sets, buffers, class instances, bigints, ...),
 * which object-hash then hashes. hash.test.ts compares the two on many values.
 */
export function canonicalText(value: unknown): string | undefined {
  // object-hash numbers every object it meets, in order, the wrapper first; an object met again
  // (a cycle, or the same object twice) is written as the string "[CIRCULAR:<its number>]".
  const seen = new Map<object, number>([[{}, 0]]);
  try {
    return `object:1:string:5:value:${writeCanonical(value, seen)},`;
  } catch (error) {
    if (error === NOT_PLAIN) return undefined;
    throw error;
  }
}

function writeCanonical(value: unknown, seen: Map<object, number>): string {
  switch (typeof value) {
    case "string":
      return `string:${value.length}:${value}`;
    case "number":
      // object-hash writes -0 as 0 (`${-0}` is "0"), while a task handed -0 may tell it from 0
      // (`Object.is(x, -0)`, `1 / x`, `x.toLocaleString()`):
      // a key of its own, so that `{ x: -0 }` edited to `{ x: 0 }` is no hit. No other text changes.
      return Object.is(value, -0) ? "number:-0" : `number:${value}`;
    case "boolean":
      return value ? "bool:true" : "bool:false";
    case "undefined":
      return "Undefined";
    case "object": {
      if (value === null) return "Null";
      const at = seen.get(value);
      if (at !== undefined) {
        const circular = `[CIRCULAR:${at}]`;
        return `string:${circular.length}:${circular}`;
      }
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) throw NOT_PLAIN;
        seen.set(value, seen.size);
        let text = `array:${value.length}:`;
        // object-hash walks arrays with forEach, which skips holes.
        for (let i = 0; i < value.length; i++) if (i in value) text += writeCanonical(value[i], seen);
        return text;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if ((proto !== Object.prototype && proto !== null) || Symbol.toStringTag in value) throw NOT_PLAIN;
      seen.set(value, seen.size);
      const keys = Object.keys(value).sort();
      let text = `object:${keys.length}:`;
      for (const key of keys) text += `string:${key.length}:${key}:${writeCanonical((value as Record<string, unknown>)[key], seen)},`;
      return text;
    }
    default:
      throw NOT_PLAIN; // bigint, symbol, function
  }
}

/** Plain sha256 hex of a string or bytes. */
export function sha256(data: string | Uint8Array): string {
  return hash("sha256", data, "hex"); // one-shot: cheaper than createHash().update().digest()
}

/** What {@link privateDigest} has computed in this process, by a sha256 of what it was given. */
const privateDigests = new Map<string, string>();

/**
 * A digest, the same on every machine, of a value that may be private and is recorded only by
 * its digest: a variable a task declares with `.env()`, an input that holds a secret. It is scrypt (N = 4096, r = 8: ~15 ms and 4 MiB here), not sha256, so that a
 * short or guessable value (a PIN, a word) cannot be found again from the cache or MLflow by
 * trying guesses at a GPU's sha256 speed. `purpose` salts it (a variable's name), so that two
 * purposes with the same value do not share a digest. Computed once per value and process.
 */
export function privateDigest(value: string, purpose: string): string {
  const memo = sha256(`${purpose}\0${value}`);
  let digest = privateDigests.get(memo);
  if (digest === undefined) {
    digest = scryptSync(value, `cairn-private-v1\0${purpose}`, 32, SCRYPT).toString("hex");
    remember(memo, digest);
  }
  return digest;
}

/**
 * {@link privateDigest} off the event loop (on libuv's thread pool, several at once): what a run
 * awaits before it makes a key, so that the key's own `privateDigest` finds it computed.
 */
export function privateDigestAsync(value: string, purpose: string): Promise<string> {
  const memo = sha256(`${purpose}\0${value}`);
  const known = privateDigests.get(memo);
  if (known !== undefined) return Promise.resolve(known);
  let pending = computing.get(memo);
  if (!pending) {
    pending = new Promise<string>((resolve, reject) =>
      scrypt(value, `cairn-private-v1\0${purpose}`, 32, SCRYPT, (error, key) => (error ? reject(error) : resolve(key.toString("hex")))),
    ).then(
      (digest) => (computing.delete(memo), remember(memo, digest), digest),
      (error: unknown) => {
        computing.delete(memo);
        throw error;
      },
    );
    computing.set(memo, pending);
  }
  return pending;
}

const SCRYPT = { N: 4096, r: 8, p: 1 } as const;
const computing = new Map<string, Promise<string>>();

function remember(memo: string, digest: string): void {
  if (privateDigests.size >= 4096) privateDigests.clear();
  privateDigests.set(memo, digest);
}

/**
 * Streamed sha256 (hex) of a file's bytes, the same as `sha256sum` prints.
 * Never holds the whole file in memory.
 */
export async function digestFile(path: string): Promise<string> {
  // A small file in one read: a stream allocates its whole highWaterMark for every read, however
  // few bytes the file holds, and a task's thousands of small artifacts made that the cost.
  if ((await stat(path)).size <= WHOLE_READ_BYTES) return sha256(await readFile(path));
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: WHOLE_READ_BYTES })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Files up to this size are read whole to be digested; larger ones are streamed in chunks of it. */
const WHOLE_READ_BYTES = 1 << 20;

/**
 * {@link digestFile} without waiting: for the files (sources, configs, package.json, a project's
 * data) that are checked where nothing can wait, as a flow is compiled or a kind is declared. A
 * small file is read whole; a larger one in chunks, so that a file over 2 GiB (which one read
 * refuses) or a large data file in a project folder is digested too, never held in memory.
 */
export function digestFileSync(path: string): string {
  const fd = openSync(path, "r");
  try {
    if (fstatSync(fd).size <= WHOLE_READ_BYTES) return sha256(readFileSync(fd));
    const hash = createHash("sha256");
    const chunk = Buffer.allocUnsafe(WHOLE_READ_BYTES);
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) hash.update(chunk.subarray(0, n));
    return hash.digest("hex");
  } finally {
    closeSync(fd);
  }
}

/** What {@link describePath} learns about a file or folder. */
export interface PathDescription {
  /** sha256 hex; for a file the same as {@link digestFile}. */
  digest: string;
  /** Total bytes of all files. */
  sizeBytes: number;
  /** Number of files (1 for a file). */
  fileCount: number;
  kind: "file" | "folder";
  /**
   * For a folder: each folder in it (with `/`, the folder itself as `.`) that holds no file and no
   * link at any depth, sorted. The digest counts them, and a store that keeps files alone (MLflow's
   * artifact store) cannot give them back: a folder artifact carries them (`Artifact.emptyFolders`),
   * so that a download is made whole again before its digest is checked. Absent for a file, and
   * for a folder described as code (see {@link DescribeOptions.code}), whose digest does not count them.
   */
  emptyFolders?: string[];
  /**
   * For a folder described as code: its files one by one, as a cache entry records them (see
   * `recordedFiles`), so that `explain` names the ones that changed. Absent otherwise.
   */
  files?: Record<string, string> | number;
}

/** Options of {@link describePath}. */
export interface DescribeOptions {
  /**
   * The folder is code (a `.codeFiles()` folder), not an artifact: what running code or a tool
   * writes in it is left out of its digest (`__pycache__/`, `*.pyc`, `.git/`, `.DS_Store`, a
   * virtualenv: see `LEFT_OUT_FOLDERS`, `LEFT_OUT_FILE`), and so are folders that hold no file,
   * as git keeps none; its files are listed one by one in `files`. An artifact's folder is
   * described whole, each byte and empty folder counted: its digest must stay exact.
   * @default false
   */
  code?: boolean;
  /**
   * With `code`: folders left out wherever the walk meets them, by path (a link to one too), not
   * by name: where a run writes while the task runs (Cairn's state folder, when `--root` is inside
   * a code folder: `--root sub/.state` with `.codeFiles("./sub")`). Counted, the run's own writes
   * changed the digest each run, so the task was never cached. Compared as real paths.
   * @default []
   */
  leftOut?: readonly string[];
}

/**
 * Digest of a file or a folder. A file's digest is its content's sha256. A
 * folder's digest covers, in sorted order, every relative path (with `/`) and
 * each file's digest, and empty folders too. Symlinks are followed, so a link
 * digests like the file or folder it points to; a broken link or a link that
 * loops back to an ancestor counts by its target text. File modes and times do
 * not count.
 */
export async function digestPath(path: string): Promise<string> {
  return (await describePath(path)).digest;
}

/**
 * {@link digestPath} plus the total size and file count, for an outputs manifest; with `code`, the
 * digest of a code folder (see {@link DescribeOptions.code}), whose files it also lists.
 */
export async function describePath(path: string, options: DescribeOptions = {}): Promise<PathDescription> {
  const info = await stat(path);
  if (!info.isDirectory()) {
    return { digest: await digestFile(path), sizeBytes: info.size, fileCount: 1, kind: "file" };
  }
  const code = options.code === true;
  return describeRecords(await walkFolder(path, code, options.leftOut), code);
}

/**
 * A code folder's {@link describePath} (with `code`), and the {@link listFolder} (with `code`)
 * of the one walk that found its files, whose stats were taken before any file was read: one walk
 * where a listing taken before the digest made two. A listing taken after the digest that equals
 * it says the digest is of the files as listed.
 */
export async function describeCodeFolder(path: string, leftOut: readonly string[] = []): Promise<{ description: PathDescription; listing: FolderListing }> {
  const records = await walkFolder(path, true, leftOut);
  const listing = listingOf(records);
  return { description: await describeRecords(records, true), listing };
}

/** The records of a walk of the folder at `path` (see {@link walk}). */
async function walkFolder(path: string, code: boolean, leftOut: readonly string[] = []): Promise<FolderRecord[]> {
  const records: FolderRecord[] = [];
  const skipped = code && leftOut.length ? new Set(await Promise.all(leftOut.map(realPathOf))) : undefined;
  await walk(path, "", [await realpath(path)], records, code, skipped);
  return records;
}

/** The real path of `path`, or its absolute path while it does not exist (nothing there to walk yet). */
async function realPathOf(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** A folder's description from the records of its walk (see {@link describePath}). */
async function describeRecords(records: FolderRecord[], code: boolean): Promise<PathDescription> {
  // Digest files a few at a time: enough to overlap I/O, few enough open files.
  const files = records.filter((r): r is FileRecord => r.type === "file");
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++]!;
      file.digest = await digestFile(file.absolute);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker));
  records.sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
  const hash = createHash("sha256").update("cairn-folder-v1\n");
  let sizeBytes = 0;
  for (const record of records) {
    if (record.type === "file") sizeBytes += record.size;
    const detail = record.type === "file" ? record.digest : record.type === "link" ? record.target : "";
    hash.update(`${record.type}\0${record.relative}\0${detail}\n`);
  }
  const digest = hash.digest("hex");
  if (code) {
    const entries = records.map((r) => `${r.relative}\0${r.type === "file" ? r.digest : r.type === "link" ? `link:${r.target}` : ""}`);
    return { digest, sizeBytes, fileCount: files.length, kind: "folder", files: recordedFiles(entries) };
  }
  return { digest, sizeBytes, fileCount: files.length, kind: "folder", emptyFolders: emptyFoldersOf(records) };
}

/** Of a folder's sorted records, the folders with no file or link below them, the folder itself as `.` (see {@link PathDescription}). */
function emptyFoldersOf(records: readonly FolderRecord[]): string[] {
  const filled = new Set<string>();
  for (const record of records) {
    if (record.type === "dir") continue;
    filled.add(".");
    for (let at = record.relative.lastIndexOf("/"); at > 0; at = record.relative.lastIndexOf("/", at - 1)) {
      const parent = record.relative.slice(0, at);
      if (filled.has(parent)) break; // its ancestors were added with it
      filled.add(parent);
    }
  }
  const empty = filled.has(".") ? [] : ["."];
  for (const record of records) if (record.type === "dir" && !filled.has(record.relative)) empty.push(record.relative);
  return empty;
}

/**
 * What one walk of a folder's stats says of it, by relative path (with `/`): each file's size,
 * modification time, change time (ns) and inode, each folder, each link counted by its target
 * text; the same entries, links followed the same way, as {@link describePath} digests. No file
 * is read. A null-prototype object: a file may be named `__proto__`.
 */
export type FolderListing = Record<string, string>;

/**
 * The {@link FolderListing} of the folder at `path`: what a folder's digest is trusted on once
 * taken (a file added, removed or renamed in it, or edited in place, changes it). The inode is
 * there so that two files of one size and time swapped by name are seen too: a file system's
 * clock ticks coarsely enough for a task's files to share a time. The change time is there so
 * that an edit whose modification time was set back (`touch -d`, `cp -p` of a file of the same
 * size and time) is seen too: any write, and setting the times, sets it to now. With `code`, it
 * leaves out what the code folder's digest leaves out (see {@link DescribeOptions}), so that a
 * check stats only what the digest counts (not a `node_modules/` in full), and what a run writes
 * there (`.cairn/`) does not make every later listing differ, which sent each check to read the folder again.
 */
export async function listFolder(path: string, options: DescribeOptions = {}): Promise<FolderListing> {
  return listingOf(await walkFolder(path, options.code === true, options.leftOut));
}

/** The {@link FolderListing} of a walk's records. */
function listingOf(records: readonly FolderRecord[]): FolderListing {
  // No prototype: a file named `__proto__` is an entry like any other, not a prototype to set.
  const listing: FolderListing = Object.create(null) as FolderListing;
  for (const record of records) listing[record.relative] = record.type === "file" ? `file ${record.stamp}` : record.type === "link" ? `link ${record.target}` : "dir";
  return listing;
}

interface FileRecord {
  type: "file";
  relative: string;
  absolute: string;
  size: number;
  /** What one stat says of the file: size, modification time (ns), inode and change time (ns) (see {@link listFolder}). */
  stamp: string;
  digest: string;
}
type FolderRecord = FileRecord | { type: "dir"; relative: string } | { type: "link"; relative: string; target: string };

/**
 * Adds the records of the folder at `absolute` (`relative` from the walk's root) to `out`. `code`:
 * what a code folder leaves out is left out (by name, whatever it is: a file, a folder or a link;
 * a virtualenv below the root, and a folder whose real path is in `skipped`), and no folder is
 * recorded, so that one holding no file counts for nothing.
 */
async function walk(absolute: string, relative: string, ancestors: string[], out: FolderRecord[], code = false, skipped?: ReadonlySet<string>): Promise<void> {
  const dirents = await readdir(absolute, { withFileTypes: true });
  if (code && relative !== "" && dirents.some((d) => d.name === VIRTUALENV_MARK)) return;
  for (const dirent of dirents) {
    if (code && isLeftOutName(dirent.name)) continue;
    const childAbsolute = join(absolute, dirent.name);
    const childRelative = relative ? `${relative}/${dirent.name}` : dirent.name;
    let info = await lstat(childAbsolute, { bigint: true });
    if (info.isSymbolicLink()) {
      const target = await readlink(childAbsolute);
      try {
        info = await stat(childAbsolute, { bigint: true });
      } catch {
        out.push({ type: "link", relative: childRelative, target });
        continue;
      }
      if (info.isDirectory() && ancestors.includes(await realpath(childAbsolute))) {
        out.push({ type: "link", relative: childRelative, target });
        continue;
      }
    }
    if (info.isDirectory()) {
      const real = await realpath(childAbsolute);
      if (skipped?.has(real)) continue;
      if (!code) out.push({ type: "dir", relative: childRelative });
      await walk(childAbsolute, childRelative, [...ancestors, real], out, code, skipped);
    } else if (info.isFile()) {
      const stamp = `${info.size} ${info.mtimeNs} ${info.ino} ${info.ctimeNs}`;
      out.push({ type: "file", relative: childRelative, absolute: childAbsolute, size: Number(info.size), stamp, digest: "" });
    }
    // Sockets, FIFOs and devices have no content to digest; they are left out.
  }
}
