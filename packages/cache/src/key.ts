import { CacheOptionError, CacheValueError } from "./errors.ts";
import { isLeftOut } from "./code-folder.ts";
import { CACHE_SCHEMA_VERSION, hashValue, privateDigest, sha256 } from "./hash.ts";

/** What a task's cache key is made of, as the scheduler gathers it. */
/** The code entry of an http task's URL with hidden parts (dsl's http kind): said as its option `url`. */
const HTTP_URL_ENTRY = "http url";

export interface CacheKeyIngredients {
  /** @default CACHE_SCHEMA_VERSION */
  schemaVersion?: number;
  taskName: string;
  /** The task's declared version; bump it to invalidate old results by hand. */
  taskVersion?: string | number;
  /**
   * Code fingerprint computed by the caller: function source, a script or
   * notebook file digest, an MLflow project commit, a resolved model version.
   */
  code: string;
  /**
   * What `code` is made of, to say which part changed; not part of the key (the key hashes
   * `code` whole, as it did before these were recorded). `own`: the task's own code (its
   * function's text, a script's digest); `cacheKey`: the task's `.cache({ key })`; `resolved`:
   * what its code resolved to when the key was made (a model alias's version).
   */
  codeParts?: { own: string; cacheKey?: string; resolved?: string; what?: string; declaration?: string; contents?: CodeContents; byOption?: CodeByOption; formerly?: CodeFormerly; kind?: string };
  /**
   * Content digests of the files the task declares its code depends on, by the name the
   * task gave them (`.codeFiles("./lib/features.ts")`); each is its own ingredient, so an
   * explanation can name the file that changed.
   */
  codeFiles?: Record<string, string>;
  /**
   * The files of each folder among `codeFiles`, by its name: relative path -> a short digest, or
   * only how many when too many to record (see `recordedFiles`). Not in the key, which holds the
   * folder's digest: an explanation names the files that changed.
   */
  codeFolders?: Record<string, Record<string, string> | number>;
  /**
   * Input values, with every artifact already replaced by its content digest
   * (see {@link replaceArtifacts}), so paths and run ids never count.
   */
  inputs: Record<string, unknown>;
  /** The environment variables the task declares, `undefined` when unset. Only hashes are kept. */
  env?: Record<string, string | undefined>;
  /**
   * The flow params the task's code reads (through `ctx.params`), by name: they shape its outputs
   * as its inputs do. Absent (or empty) for a task that reads none, whose key is then what it was.
   */
  params?: Record<string, unknown>;
  /**
   * The environment the task's code runs in, by content (a Python task's interpreter and
   * packages): recorded whole, so that a change is named. Absent for a task that has none, whose
   * key is then what it was.
   */
  environment?: CodeEnvironment;
}

/** One input as recorded in an entry: its hash, and its value when small. */
export interface RecordedInput {
  sha256: string;
  /** The value itself when its JSON is at most {@link RECORDED_VALUE_MAX_BYTES}; absent otherwise. */
  value?: unknown;
}

/**
 * The ingredients as stored in a cache entry, to explain a miss. Safe to show:
 * env values appear only as hashes, large inputs only as hashes. The key is a
 * hash of exactly these fields.
 */
export interface RecordedIngredients {
  schemaVersion: number;
  taskName: string;
  taskVersion: string | null;
  /** sha256 of the code fingerprint. */
  code: string;
  /**
   * What the code fingerprint is made of (not part of the key): sha256 of the task's own code,
   * and its `.cache({ key })` and what its code resolved to, as they were. Absent on entries made
   * before it was recorded: a change is then only "code changed".
   */
  codeParts?: RecordedCodeParts;
  /** Content digest of each declared code file, by name; absent when the task declares none. */
  codeFiles?: Record<string, string>;
  /**
   * The files of each declared folder, by its name in `codeFiles` (see {@link CacheKeyIngredients.codeFolders});
   * not part of the key. Absent when it declares no folder, and on entries made before it was
   * recorded (when Cairn also began to leave out of a folder's digest what running code writes in it).
   */
  codeFolders?: Record<string, Record<string, string> | number>;
  inputs: Record<string, RecordedInput>;
  /** sha256 of each declared variable's name and value; `null` when unset. */
  env: Record<string, string | null>;
  /** The flow params the task reads, recorded as inputs are; absent when it reads none. */
  params?: Record<string, RecordedInput>;
  /** The environment its code runs in (a Python task's interpreter and packages); absent when it has none. */
  environment?: RecordedEnvironment;
}

/** See {@link RecordedIngredients.codeParts}. */
export interface RecordedCodeParts {
  /** sha256 of the task's own code. */
  own: string;
  cacheKey?: string;
  resolved?: string;
  /** What the task's own code is, in words (``script `step.py` ``); absent: the task's function. */
  what?: string;
  /** The name, among `codeFiles`, of the code that declares the task (its statement, or the build function it is declared in). */
  declaration?: string;
  /** The files the task's own code is a digest of (an MLflow project's folder), to name the ones that changed. */
  contents?: CodeContents;
  /** The task's own code by its parts (sha256 of each), to name the options that changed. */
  byOption?: CodeByOption;
  /** The task's own code as an earlier Cairn made it (its sha256 when recorded), and why that differs. */
  formerly?: CodeFormerly;
  /**
   * The kind of a task that is not a function task (`sql`), installed as a package or written in
   * the project, to name it when its `code` changed; absent on entries made before it was recorded.
   */
  kind?: string;
}

/**
 * The task's own code as an earlier Cairn made it, for a task whose key now counts more (a
 * notebook's kernel): an entry of that Cairn whose own code is `own` differs by how keys are made,
 * which `why` says in words, not by a change of the code.
 */
export interface CodeFormerly {
  own: string;
  why: string;
}

/**
 * A process task's code by its parts: `content`, its file's digest or its command; `options`, each
 * option's part by name (`cwd`, `args`). In the ingredients as given, recorded as the sha256 of each.
 */
export interface CodeByOption {
  content: string;
  options: Record<string, string>;
}

/**
 * The files a task's own code is one digest of (an MLflow project's folder), file by file: not in
 * the key, which holds the digest. `noun` names one in words (`project file`); `files`: relative
 * path -> a short digest of its content, or only how many there are when they are too many to record.
 */
export interface CodeContents {
  noun: string;
  files: Record<string, string> | number;
}

/**
 * The environment a task's code runs in, by content (a Python task's interpreter and installed
 * packages): in the key, and recorded whole, so that `explain` says what changed.
 * `noun` names it in words (`Python environment`); `interpreter` is its implementation and
 * version (`cpython 3.12.1`), or why there is none (`python: not found (/opt/py)`);
 * `packages`: normalised name -> version.
 */
export interface CodeEnvironment {
  noun: string;
  interpreter: string;
  packages: Record<string, string>;
}

/**
 * A {@link CodeEnvironment} as an entry records it: the key holds `digest`, the sha256 of its
 * whole package list; `packages` is that list while it has at most {@link RECORDED_PACKAGES_MAX}
 * packages, else only how many (3,000 packages made every entry, map item and queue job ~100 KB;
 * `explain` then says the packages changed, not which).
 */
export interface RecordedEnvironment {
  noun: string;
  interpreter: string;
  digest: string;
  packages: Record<string, string> | number;
}

/** The most packages an entry records by name (see {@link RecordedEnvironment}). */
export const RECORDED_PACKAGES_MAX = 500;

/** Changed files named in one change; the rest are counted. */
const NAMED_FILES = 3;

/**
 * Under this symbol a code-dependencies record (code-file name -> digest) may name its entry
 * that holds the task's own declaration. A symbol is no name of the record (`Object.keys`), so
 * it never enters the key: it only lets `explain` call that entry the task's declaration.
 */
export const DECLARATION_ENTRY = Symbol.for("cairn.code.declaration");

/**
 * The code-file name under which a kind defined in the project records its run function's text
 * (`kind sql#run`): `explain` calls it the kind's run function, and knows the task is a kind's.
 */
export function kindRunEntry(kind: string): string {
  return `kind ${kind}#run`;
}

/** The kind whose run function `name` is ({@link kindRunEntry}), or undefined. */
function kindOfRunEntry(name: string): string | undefined {
  return name.startsWith("kind ") && name.endsWith("#run") ? name.slice("kind ".length, -"#run".length) : undefined;
}

/**
 * The code-file name under which a task's code records a package it imports that was installed
 * from a registry (`package zod`), its version the value: the version stands for the package's
 * files, so `explain` says ``package `zod` 3.23.8 → 4.0.1``.
 */
export function packageEntry(name: string): string {
  return `package ${name}`;
}

/** The package the code-file name `name` records ({@link packageEntry}), or undefined. */
export function packageOfEntry(name: string): string | undefined {
  return name.startsWith("package ") ? name.slice("package ".length) : undefined;
}

/**
 * Under this symbol a code-dependencies record may give the task's own code as the source its
 * module was compiled from has it, when that is not its `code`: a function that tsc compiled, read
 * as tsx gives its text from the TypeScript source. It then stands for `code` in the key, so that
 * the compiled app and `cairn run` or tsx of the source share cache entries. A symbol, so never
 * a name of the record.
 */
export const SOURCE_CODE_ENTRY = Symbol.for("cairn.code.source");

/**
 * Under this symbol a code-dependencies record may give what the task's function reads from
 * `process.env`, as its parsed text and its module tell (`process.env.SCALE`; `import { env } from
 * "node:process"` then `env.SCALE`; `const e = process.env`; not a mention in a string or a
 * comment): `{ names, unnamed }`, the variables it reads by a literal name, which enter the key,
 * and whether it reads the object otherwise (`env[name]`). When given, it replaces
 * `TaskDefinition.envRead` and `envReadUnnamed`, which a pattern found in the function's text.
 * A symbol, so never a name of the record.
 */
export const ENV_READ_ENTRY = Symbol.for("cairn.code.envRead");

/** Inputs whose JSON is larger than this are recorded by hash only. */
export const RECORDED_VALUE_MAX_BYTES = 1024;

/**
 * The cache key of a task: a sha256 (hex) over the schema version, task name
 * and version, code fingerprint, input values and declared env vars.
 *
 * @example
 * const { key, ingredients } = computeCacheKey({ taskName: "train", code: fnSource, inputs: { rows: 500 } });
 */
/** Options of {@link computeCacheKey}. */
export interface CacheKeyOptions {
  /**
   * The hashes of input (and param) values already hashed, by the value: an object handed to many
   * tasks (an upstream output, in every consumer's inputs) is hashed once. Only for values that
   * do not change once hashed, as a run's stored outputs do not; the key is the same either way.
   */
  digests?: WeakMap<object, string>;
}

export function computeCacheKey(ingredients: CacheKeyIngredients, options: CacheKeyOptions = {}): { key: string; ingredients: RecordedIngredients } {
  const { taskName, code, inputs } = ingredients;
  if (typeof taskName !== "string" || taskName === "") {
    throw new CacheOptionError("taskName", "a non-empty string", taskName);
  }
  if (typeof code !== "string") {
    throw new CacheOptionError("code", "a string (the code fingerprint)", code, "Pass the function source or a file digest.");
  }
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) {
    throw new CacheOptionError("inputs", "an object of input values by name", inputs);
  }
  const schemaVersion = ingredients.schemaVersion ?? CACHE_SCHEMA_VERSION;
  const recordedInputs: Record<string, RecordedInput> = {};
  for (const name of Object.keys(inputs).sort()) setOwn(recordedInputs, name, recordInput(inputs[name], options.digests));
  const env: Record<string, string | null> = {};
  for (const name of Object.keys(ingredients.env ?? {}).sort()) {
    const value = ingredients.env![name];
    if (value !== undefined && typeof value !== "string") {
      throw new CacheOptionError(`env.${name}`, "a string or undefined", "(a non-string value, not shown)");
    }
    // Name-bound so that two variables with the same value do not share a hash; slow to
    // reverse, since a declared variable may hold a password.
    setOwn(env, name, value === undefined ? null : privateDigest(value, `env\0${name}`));
  }
  const recorded: RecordedIngredients = {
    schemaVersion,
    taskName,
    taskVersion: ingredients.taskVersion === undefined ? null : String(ingredients.taskVersion),
    code: sha256(code),
    inputs: recordedInputs,
    env,
  };
  const parts = ingredients.codeParts;
  if (parts !== undefined) {
    recorded.codeParts = {
      own: sha256(parts.own),
      ...(parts.cacheKey !== undefined ? { cacheKey: parts.cacheKey } : {}),
      ...(parts.resolved !== undefined ? { resolved: parts.resolved } : {}),
      ...(parts.what !== undefined ? { what: parts.what } : {}),
      ...(parts.declaration !== undefined ? { declaration: parts.declaration } : {}),
      ...(parts.contents !== undefined ? { contents: parts.contents } : {}),
      ...(parts.byOption !== undefined ? { byOption: digestsByOption(parts.byOption) } : {}),
      ...(parts.formerly !== undefined ? { formerly: { own: sha256(parts.formerly.own), why: parts.formerly.why } } : {}),
      ...(parts.kind !== undefined ? { kind: parts.kind } : {}),
    };
  }
  if (ingredients.codeFiles !== undefined && Object.keys(ingredients.codeFiles).length) {
    const files: Record<string, string> = {};
    for (const name of Object.keys(ingredients.codeFiles).sort()) {
      const digest = ingredients.codeFiles[name];
      if (typeof digest !== "string") throw new CacheOptionError(`codeFiles.${name}`, "a content digest (string)", digest);
      files[name] = digest;
    }
    recorded.codeFiles = files;
    const folders = ingredients.codeFolders;
    const named = folders === undefined ? [] : Object.keys(folders).filter((name) => Object.hasOwn(files, name)).sort();
    if (named.length) recorded.codeFolders = Object.fromEntries(named.map((name) => [name, folders![name]!]));
  }
  if (ingredients.params !== undefined && Object.keys(ingredients.params).length) {
    const params: Record<string, RecordedInput> = {};
    for (const name of Object.keys(ingredients.params).sort()) setOwn(params, name, recordInput(ingredients.params[name], options.digests));
    recorded.params = params;
  }
  const environment = ingredients.environment;
  if (environment !== undefined) {
    if (!isCodeEnvironment(environment) || Object.values(environment.packages).some((v) => typeof v !== "string")) {
      throw new CacheOptionError("environment", "{ noun, interpreter, packages: { name: version } } (strings)", environment);
    }
    recorded.environment = recordEnvironment(environment);
  }
  return { key: keyOfIngredients(recorded), ingredients: recorded };
}

/** {@link CodeByOption} as an entry records it: the sha256 of each part, so that no option's text is kept. */
function digestsByOption(parts: CodeByOption): CodeByOption {
  const options: Record<string, string> = {};
  for (const name of Object.keys(parts.options).sort()) options[name] = sha256(parts.options[name]!);
  return { content: sha256(parts.content), options };
}

/** What an entry keeps of `environment`: the digest of its whole package list (by content: their order does not count), and the list when small. */
function recordEnvironment(environment: CodeEnvironment): RecordedEnvironment {
  const names = Object.keys(environment.packages).sort();
  const digest = hashValue(names.map((name) => [name, environment.packages[name]]));
  const packages = names.length <= RECORDED_PACKAGES_MAX ? Object.fromEntries(names.map((name) => [name, environment.packages[name]!])) : names.length;
  return { noun: environment.noun, interpreter: environment.interpreter, digest, packages };
}

/** The key of recorded ingredients; `computeCacheKey(x).key === keyOfIngredients(computeCacheKey(x).ingredients)`. */
export function keyOfIngredients(ingredients: RecordedIngredients): string {
  return hashValue({
    schemaVersion: ingredients.schemaVersion,
    taskName: ingredients.taskName,
    taskVersion: ingredients.taskVersion,
    code: ingredients.code,
    inputs: Object.fromEntries(Object.entries(ingredients.inputs).map(([name, input]) => [name, input.sha256])),
    env: ingredients.env,
    // Only when present, so that keys of tasks without code files are what they were.
    ...(ingredients.codeFiles ? { codeFiles: ingredients.codeFiles } : {}),
    ...(ingredients.params ? { params: Object.fromEntries(Object.entries(ingredients.params).map(([name, param]) => [name, param.sha256])) } : {}),
    // Its noun is words, not content: only what runs counts.
    ...(ingredients.environment ? { environment: { interpreter: ingredients.environment.interpreter, packages: ingredients.environment.digest } } : {}),
  });
}

function recordInput(value: unknown, digests: WeakMap<object, string> | undefined): RecordedInput {
  let sha = typeof value === "object" && value !== null ? digests?.get(value) : undefined;
  if (sha === undefined) {
    sha = hashValue(value);
    if (typeof value === "object" && value !== null) digests?.set(value, sha);
  }
  const recorded: RecordedInput = { sha256: sha };
  // A value whose JSON is surely larger is not stringified whole only to be measured.
  if (jsonBytesAtLeast(value, RECORDED_VALUE_MAX_BYTES + 1) > RECORDED_VALUE_MAX_BYTES) return recorded;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // BigInt or a cycle: recorded by hash only.
  }
  if (json !== undefined && Buffer.byteLength(json) <= RECORDED_VALUE_MAX_BYTES) recorded.value = JSON.parse(json);
  return recorded;
}

/**
 * A lower bound of the bytes of `JSON.stringify(value)` (UTF-8), counted until it reaches
 * `enough`: a string is at least its length and its quotes, an array or object its brackets,
 * separators and entries. Stops early: a large value is not walked whole. Where JSON
 * may leave a value out or write it its own way (undefined, a function, a class instance,
 * `toJSON`), it counts nothing.
 */
function jsonBytesAtLeast(value: unknown, enough: number): number {
  let bytes = 0;
  const count = (v: unknown): void => {
    if (bytes >= enough) return;
    switch (typeof v) {
      case "string":
        bytes += v.length + 2;
        return;
      case "number":
      case "boolean":
        bytes += 1;
        return;
      case "object": {
        if (v === null) {
          bytes += 4;
          return;
        }
        // Only arrays and plain objects: JSON writes others its own way (toJSON, a boxed string).
        const proto = Object.getPrototypeOf(v) as unknown;
        if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) return;
        if (typeof (v as { toJSON?: unknown }).toJSON === "function") return;
        // Every level counts its brackets first: a cycle ends the count too.
        bytes += 2;
        if (Array.isArray(v)) {
          bytes += Math.max(0, v.length - 1);
          for (let i = 0; i < v.length && bytes < enough; i++) count(v[i]);
          return;
        }
        for (const key in v) {
          if (bytes >= enough) return;
          if (!Object.hasOwn(v, key)) continue;
          const item = (v as Record<string, unknown>)[key];
          if (item === undefined || typeof item === "function" || typeof item === "symbol") continue;
          bytes += key.length + 3;
          count(item);
        }
        return;
      }
      default:
        return;
    }
  };
  count(value);
  return bytes;
}

/** What stands for an artifact in the inputs of a cache key. */
export interface ArtifactDigest {
  $artifact: string;
}

/**
 * Walks a value (arrays and plain objects) and replaces every artifact with
 * `{ $artifact: digest }`, so an artifact with the same content under another
 * path or run gives the same key. Digests are computed in parallel.
 *
 * @example
 * const inputs = await replaceArtifacts(raw, (v) => v instanceof Artifact, (a) => a.digest());
 */
export async function replaceArtifacts<A>(
  value: unknown,
  isArtifact: (value: unknown) => value is A,
  digestOf: (artifact: A) => string | Promise<string>,
): Promise<unknown> {
  const pending: Promise<void>[] = [];
  // The path to where the walk is, as parts (`inputs`, `[3]`, `.rows`): joined only for a message.
  const at: string[] = ["inputs"];
  // One list of ancestors, pushed and popped: a copy per level made deep values quadratic in memory.
  const ancestors: object[] = [];
  // Copies are made at the first change only: a value that holds no artifact is handed back as
  // it is, so that the digest of an upstream output can be remembered by the object (see computeCacheKey).
  const walk = (node: unknown): unknown => {
    if (isArtifact(node)) {
      const replaced = { $artifact: "" } satisfies ArtifactDigest;
      const path = at.join("");
      pending.push(
        Promise.resolve(digestOf(node)).then((digest) => {
          if (typeof digest !== "string" || digest === "") {
            throw new CacheOptionError(`digestOf(${path})`, "a non-empty digest string", digest);
          }
          replaced.$artifact = digest;
        }),
      );
      return replaced;
    }
    if (typeof node !== "object" || node === null) return node;
    if (ancestors.includes(node)) throw new CacheValueError(at.join(""), "it refers to itself (a cycle)");
    if (Array.isArray(node)) {
      ancestors.push(node);
      let out: unknown[] | undefined;
      for (let i = 0; i < node.length; i++) {
        if (!(i in node)) continue; // a hole stays one
        at.push(`[${i}]`);
        const item: unknown = node[i];
        const r = walk(item);
        at.pop();
        if (r !== item) (out ??= node.slice())[i] = r;
      }
      ancestors.pop();
      return out ?? node;
    }
    const proto = Object.getPrototypeOf(node);
    if (proto !== Object.prototype && proto !== null) return node;
    ancestors.push(node);
    let out: Record<string, unknown> | undefined;
    const keys = Object.keys(node);
    for (const k of keys) {
      at.push(`.${k}`);
      const item = (node as Record<string, unknown>)[k];
      const r = walk(item);
      at.pop();
      if (r !== item) {
        if (!out) {
          out = {};
          for (const key of keys) setOwn(out, key, (node as Record<string, unknown>)[key]);
        }
        setOwn(out, k, r);
      }
    }
    ancestors.pop();
    return out ?? node;
  };
  const result = walk(value);
  await Promise.all(pending);
  return result;
}

/**
 * Sets an own property, also one named `__proto__` (JSON.parse makes it an own key), which an
 * assignment would take as the object's prototype: the key would then lose it.
 */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** One difference between two sets of recorded ingredients. */
export interface IngredientChange {
  /** `schemaVersion`, `taskName`, `taskVersion`, `code`, `cacheKey`, `resolved`, `codeFiles.<name>`, `environment`, `inputs.rows`, `inputs.config.lr`, `env.API_URL`. */
  path: string;
  /** The value before; `undefined` when added. Env and code changes show hashes only. */
  before: unknown;
  /** The value after; `undefined` when removed. */
  after: unknown;
  /** A sentence for people: "input `rows` changed from 500 to 1000". */
  message: string;
}

/** Options of {@link diffIngredients}. */
export interface DiffOptions {
  /**
   * Words for a change of what the task's code resolved to (`codeParts.resolved`), from the two
   * recorded values: the task knows what they mean (a model version); undefined for the generic words.
   */
  resolvedChange?: (before: string, after: string) => string | undefined;
  /**
   * Absolute folders where the project is checked out for the newer record (the working folder,
   * its git checkout's root): a text input that names a path in one of them, and that differs
   * from the older one only in the folders before that part, is said as a checkout path (each
   * clone at another place misses) with how to fix it.
   */
  checkouts?: readonly string[];
}

/**
 * Explains why two keys differ, ingredient by ingredient.
 *
 * @example
 * diffIngredients(old.ingredients, now.ingredients)
 * // [{ path: "inputs.rows", before: 500, after: 1000, message: "input `rows` changed from 500 to 1000" }]
 */
export function diffIngredients(a: RecordedIngredients, b: RecordedIngredients, options: DiffOptions = {}): IngredientChange[] {
  const changes: IngredientChange[] = [];
  const scalar = (field: "schemaVersion" | "taskName" | "taskVersion", label: string) => {
    if (a[field] !== b[field]) {
      changes.push({ path: field, before: a[field], after: b[field], message: `${label} changed ${fromTo(a[field], b[field])}` });
    }
  };
  scalar("schemaVersion", "cache schema version");
  scalar("taskName", "task name");
  scalar("taskVersion", "task version");
  const filesA = a.codeFiles ?? {};
  const filesB = b.codeFiles ?? {};
  // The entry that declares the task, as the newer record names it: said as its declaration, and
  // one change with its function when both changed (the declaration holds the function's text).
  const declaration = b.codeParts?.declaration ?? a.codeParts?.declaration;
  /** The code file `name` is in both records, with other contents. */
  const changedIn = (name: string | undefined) => name !== undefined && own(filesA, name) !== undefined && own(filesB, name) !== undefined && filesA[name] !== filesB[name];
  const declarationChanged = changedIn(declaration);
  // A task of a kind defined in the project: its run function is recorded on its own, and its own
  // code is the kind's `code` (options, config), not a function.
  const names = unionKeys(filesA, filesB);
  const kindRun = names.find((name) => kindOfRunEntry(name) !== undefined);
  const kind = kindRun === undefined ? undefined : kindOfRunEntry(kindRun);
  const runChanged = changedIn(kindRun);
  if (a.code !== b.code) diffCode(a, b, changes, declarationChanged ? declaration : undefined, kind, options);
  for (const name of names) {
    const before = own(filesA, name);
    const after = own(filesB, name);
    if (before === after) continue;
    if (name === declaration && declarationChanged) {
      // Its run function is written in it: one change, the task's function (as a function task's).
      if (kind !== undefined && runChanged) {
        changes.push({ path: `codeFiles.${name}`, before, after, message: declarationWords(name, b.taskName, true) });
        continue;
      }
      if (changes.some((c) => c.path === "code" && c.after === b.code)) continue; // said with the function, or the kind's `code` written in it
      changes.push({ path: `codeFiles.${name}`, before, after, message: declarationWords(name, b.taskName, false) });
      continue;
    }
    if (name === kindRun && runChanged && declarationChanged) continue; // said with its declaration
    // Found by the DSL: `flow.ts#readJson` is a helper of the task's module; `kind sql#run` a
    // kind's run function; `http header accept` and `http headers()` an http task's headers, and
    // `http url` the hidden parts of its URL (private digests: a value may be a credential).
    const pkg = packageOfEntry(name);
    if (pkg !== undefined) {
      const message = before === undefined ? `package \`${pkg}\` ${after} is now imported` : after === undefined ? `package \`${pkg}\` ${before} is no longer imported` : `package \`${pkg}\` ${before} → ${after}`;
      changes.push({ path: `codeFiles.${name}`, before, after, message });
      continue;
    }
    const folder = folderChange(name, a, b);
    if (folder !== undefined) {
      changes.push({ path: `codeFiles.${name}`, before, after, message: folder });
      continue;
    }
    if (name === HTTP_URL_ENTRY) {
      // The hidden parts of an http task's URL (a password, a query value): a change of its option
      // `url`, said once (with the URL shown, when that changed too) and never as a file added or removed.
      if (!changes.some((c) => c.path === "code" && c.message.includes("`url`"))) changes.push({ path: `codeFiles.${name}`, before, after, message: "option `url` changed" });
      continue;
    }
    const hash = name.lastIndexOf("#");
    const what =
      name.startsWith("http header ") ? `request header \`${name.slice("http header ".length)}\``
      : name === "http headers()" ? "the function that makes the request headers"
      : name === kindRun ? `the run function of kind \`${kind}\``
      : hash > 0 ? `helper \`${name.slice(hash + 1)}\` of ${name.slice(0, hash)}`
      : `code file \`${name}\``;
    const message = before === undefined ? `${what} was added` : after === undefined ? `${what} was removed` : `${what} changed`;
    changes.push({ path: `codeFiles.${name}`, before, after, message });
  }

  const environment = environmentChange(a.environment, b.environment);
  if (environment !== undefined) changes.push({ path: "environment", before: a.environment, after: b.environment, message: environment });

  diffRecorded(a.inputs, b.inputs, "inputs", "input", changes, options.checkouts ?? []);
  diffRecorded(a.params ?? {}, b.params ?? {}, "params", "param", changes, options.checkouts ?? []);

  for (const name of unionKeys(a.env, b.env)) {
    const before = own(a.env, name);
    const after = own(b.env, name);
    if (before === after) continue;
    const state = (h: string | null | undefined) => (h === undefined ? "not declared" : h === null ? "unset" : "set");
    const what =
      before === undefined ? "is newly declared" : after === undefined ? "is no longer declared"
      : before === null ? "was set" : after === null ? "was unset" : "changed value";
    changes.push({
      path: `env.${name}`,
      before: state(before),
      after: state(after),
      message: `environment variable \`${name}\` ${what}`,
    });
  }
  return changes;
}

/**
 * The code fingerprint differs: which of its parts did, when both record them (a changed
 * `.cache({ key })` or a model alias that moved is no change of code); else "code changed".
 */
function diffCode(a: RecordedIngredients, b: RecordedIngredients, changes: IngredientChange[], declaration: string | undefined, kind: string | undefined, options: DiffOptions): void {
  const pa = a.codeParts;
  const pb = b.codeParts;
  const found = changes.length;
  if (pa && pb) {
    // A project kind's run entry names its kind; a kind from a package has none (its code is not
    // read), so the newer record's kind names it.
    kind ??= pb.kind;
    if (pa.own !== pb.own) {
      const message =
        formerlyChange(pa.own, pb.formerly) ??
        contentsChange(pa.contents, pb.contents) ??
        optionsChange(pa.byOption, pb.byOption, pb.what) ??
        (pb.what !== undefined ? `${pb.what} changed (${pb.what.startsWith("notebook ") ? "its code cells, its kernel, its cell tagged `parameters`, or its options: python, html, cwd, env" : "its content, or its options: args, interpreter, cwd, env"})`
        : kind !== undefined ? `the \`code\` of task \`${b.taskName}\` (kind \`${kind}\`) changed: what its definition's \`code\` holds (its options, config or version)`
        : declaration !== undefined ? declarationWords(declaration, b.taskName, true)
        : "code changed");
      changes.push({ path: "code", before: a.code, after: b.code, message });
    }
    const part = (field: "cacheKey" | "resolved", what: string) => {
      const before = pa[field];
      const after = pb[field];
      if (before === after) return;
      const told = field === "resolved" && before !== undefined && after !== undefined ? options.resolvedChange?.(before, after) : undefined;
      const message = told ?? (before === undefined ? `${what} was added: ${show(after)}` : after === undefined ? `${what} was removed (was ${show(before)})` : `${what} changed ${fromTo(before, after)}`);
      changes.push({ path: field, before, after, message });
    };
    part("cacheKey", "cache key (`.cache({ key })`)");
    part("resolved", "what the task's code resolves to (a model alias now naming another version, say)");
  }
  if (changes.length === found) changes.push({ path: "code", before: a.code, after: b.code, message: "code changed" });
}

/** An entry an earlier Cairn made of the same code, whose key counted less of it: `why` says so. */
function formerlyChange(own: string, formerly: CodeFormerly | undefined): string | undefined {
  if (typeof formerly !== "object" || formerly === null) return undefined;
  return formerly.own === own && typeof formerly.why === "string" ? formerly.why : undefined;
}

/**
 * The files of the task's code that changed, when both records hold them: ``project file `train.py`
 * changed``, the first few of many and how many more; undefined when neither record has them or
 * none differs (then its options changed).
 */
function contentsChange(a: CodeContents | undefined, b: CodeContents | undefined): string | undefined {
  if (!isCodeContents(a) || !isCodeContents(b)) return undefined;
  if (typeof a.files === "number" || typeof b.files === "number") {
    const count = typeof b.files === "number" ? b.files : Object.keys(b.files).length;
    return `${b.noun}s changed (${count} files: too many to record which)`;
  }
  // Files only an older Cairn counted (a `.DS_Store` it now leaves out of a project's digest) are
  // not removed: they are said as such, since the change may be only that.
  const before = a.files;
  const after = b.files;
  const gone = Object.keys(before).filter((name) => own(after, name) === undefined && isLeftOut(name));
  const rest = gone.length ? Object.fromEntries(Object.entries(before).filter(([name]) => !gone.includes(name))) : before;
  const change = filesChange(rest, after, (name, how) => `${b.noun} \`${name}\` ${how}`, (count, named) => `${count} ${b.noun}s changed: ${named}`);
  if (!gone.length) return change;
  const noLonger =
    `${gone.map((name) => `\`${name}\``).join(", ")} ${gone.length === 1 ? "is" : "are"} no longer counted ` +
    `(Cairn now leaves ${gone.length === 1 ? "it" : "them"} out of a ${b.noun.replace(/ file$/, "")}'s digest; this misses once)`;
  return change ? `${change}; ${noLonger}` : noLonger;
}

/**
 * The files that differ between two per-file records (path -> short digest), in words: `one` words a
 * single file and how it changed (`was added`, `was removed`, `changed`); `many` the count and the
 * first few (`` `a.py` (added), `b.py` `` and how many more). Undefined when none differs.
 */
function filesChange(
  before: Readonly<Record<string, string>>,
  after: Readonly<Record<string, string>>,
  one: (name: string, how: string) => string,
  many: (count: number, named: string) => string,
): string | undefined {
  const changed = unionKeys(before, after).filter((name) => own(before, name) !== own(after, name)).sort();
  if (!changed.length) return undefined;
  const said = (name: string) => `\`${name}\`${own(before, name) === undefined ? " (added)" : own(after, name) === undefined ? " (removed)" : ""}`;
  if (changed.length === 1) {
    const name = changed[0]!;
    return one(name, own(before, name) === undefined ? "was added" : own(after, name) === undefined ? "was removed" : "changed");
  }
  const named = changed.slice(0, NAMED_FILES).map(said).join(", ");
  const more = changed.length - NAMED_FILES;
  return many(changed.length, `${named}${more > 0 ? ` and ${more} more` : ""}`);
}

/**
 * A declared code folder's change, file by file when both records list its files (see
 * {@link RecordedIngredients.codeFolders}): ``file `helpers.py` of code folder `pylib` changed``;
 * undefined when neither record holds it as a folder (then it is a code file's change). An older
 * entry that lists no folder's files was made when a folder's digest still counted what running
 * code writes in it (`__pycache__/`): that is said, since the change may be only that.
 */
function folderChange(name: string, a: RecordedIngredients, b: RecordedIngredients): string | undefined {
  const was = a.codeFolders === undefined ? undefined : own(a.codeFolders, name);
  const now = b.codeFolders === undefined ? undefined : own(b.codeFolders, name);
  if (!isRecordedFiles(was) && !isRecordedFiles(now)) return undefined;
  const folder = `code folder \`${name}\``;
  if (own(a.codeFiles ?? {}, name) === undefined) return `${folder} was added`;
  if (own(b.codeFiles ?? {}, name) === undefined) return `${folder} was removed`;
  if (!isRecordedFiles(was)) {
    return a.codeFolders === undefined
      ? `${folder} changed, or only the rule of its digest did: the earlier entry was made before Cairn left out of a code folder's digest what running code and tools write in it ` +
          "(`__pycache__/`, `*.pyc`, `.git/`, `.DS_Store`, folders that hold no file), and it lists none of the folder's files to compare (this misses once)"
      : `code file \`${name}\` is now a folder`;
  }
  if (!isRecordedFiles(now)) return `${folder} is now a file`;
  if (typeof was === "number" || typeof now === "number") {
    return `${folder} changed (${typeof now === "number" ? now : Object.keys(now).length} files: too many to record which)`;
  }
  return filesChange(was, now, (file, how) => `file \`${file}\` of ${folder} ${how}`, (count, named) => `${count} files of ${folder} changed: ${named}`) ?? `${folder} changed`;
}

/** A folder's files as an entry records them; an entry written by another version may hold anything there. */
function isRecordedFiles(value: unknown): value is Record<string, string> | number {
  return typeof value === "number" || (typeof value === "object" && value !== null && !Array.isArray(value));
}

/**
 * What changed in the environment the task's code runs in: `Python environment changed:
 * scikit-learn 1.3.2 → 1.5.0`, its interpreter first, then the first few packages and how many
 * more; undefined when the two records agree. An entry made before environments were recorded
 * is said as such (its key did not hold one).
 */
export function environmentChange(a: unknown, b: unknown): string | undefined {
  const before = isRecordedEnvironment(a) ? a : undefined;
  const after = isRecordedEnvironment(b) ? b : undefined;
  if (!before && !after) return undefined;
  if (!before || !after) {
    const noun = (after ?? before)!.noun;
    return after ? `the ${noun} now counts in the key (${after.interpreter}, ${packageCount(after)} packages); the earlier entry was made without it` : `the ${noun} no longer counts in the key`;
  }
  const changed: string[] = [];
  if (before.interpreter !== after.interpreter) changed.push(`interpreter ${before.interpreter} → ${after.interpreter}`);
  if (before.digest !== after.digest) {
    if (typeof before.packages === "number" || typeof after.packages === "number") {
      changed.push(`packages changed (${packageCount(after)} packages; too many to name)`);
    } else {
      for (const name of unionKeys(before.packages, after.packages)) {
        const was = own(before.packages, name);
        const now = own(after.packages, name);
        if (was === now) continue;
        changed.push(was === undefined ? `${name} ${now} added` : now === undefined ? `${name} ${was} removed` : `${name} ${was} → ${now}`);
      }
    }
  }
  if (!changed.length) return undefined;
  const more = changed.length - NAMED_FILES;
  return `${after.noun} changed: ${changed.slice(0, NAMED_FILES).join(", ")}${more > 0 ? ` and ${more} more` : ""}`;
}

function packageCount(environment: RecordedEnvironment): number {
  return typeof environment.packages === "number" ? environment.packages : Object.keys(environment.packages).length;
}

/** A task's environment as given to the key. */
function isCodeEnvironment(value: unknown): value is CodeEnvironment {
  if (typeof value !== "object" || value === null) return false;
  const { noun, interpreter, packages } = value as Record<string, unknown>;
  return typeof noun === "string" && typeof interpreter === "string" && typeof packages === "object" && packages !== null;
}

/**
 * The options of a process task that changed, its content unchanged: ``option `cwd` of script
 * `train.py` changed``; undefined when either record lacks its parts, or its content changed.
 */
function optionsChange(a: CodeByOption | undefined, b: CodeByOption | undefined, what: string | undefined): string | undefined {
  if (!isCodeByOption(a) || !isCodeByOption(b) || a.content !== b.content) return undefined;
  const changed = unionKeys(a.options, b.options).filter((name) => a.options[name] !== b.options[name]);
  if (!changed.length) return undefined;
  // A part that is no option the user gives (a notebook's kernel, from the task's option or the
  // notebook's metadata) is named in words: "the kernel".
  const words = changed.filter((name) => name.startsWith("the "));
  const options = changed.filter((name) => !name.startsWith("the "));
  const named = options.map((name) => `\`${name}\`${a.options[name] === undefined ? " (added)" : b.options[name] === undefined ? " (removed)" : ""}`).join(", ");
  const parts = [...(options.length ? [`option${options.length === 1 ? "" : "s"} ${named}`] : []), ...words];
  const said = parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)!}` : parts[0]!;
  return `${said}${what !== undefined ? ` of ${what}` : ""} changed`;
}

/** An entry written by another version may hold anything there. */
function isCodeByOption(value: unknown): value is CodeByOption {
  if (typeof value !== "object" || value === null) return false;
  const { content, options } = value as Record<string, unknown>;
  return typeof content === "string" && typeof options === "object" && options !== null;
}

/** An entry written by another version may hold anything there. */
function isRecordedEnvironment(value: unknown): value is RecordedEnvironment {
  if (typeof value !== "object" || value === null) return false;
  const { noun, interpreter, digest, packages } = value as Record<string, unknown>;
  return typeof noun === "string" && typeof interpreter === "string" && typeof digest === "string" && (typeof packages === "number" || (typeof packages === "object" && packages !== null));
}

/** An entry written by another version may hold anything there. */
function isCodeContents(value: unknown): value is CodeContents {
  if (typeof value !== "object" || value === null) return false;
  const { noun, files } = value as Record<string, unknown>;
  return typeof noun === "string" && (typeof files === "number" || (typeof files === "object" && files !== null));
}

/**
 * The code that declares a task, changed: its top-level statement (settings, builder chain), the
 * flow's build function it is declared in, or another top-level statement that holds it.
 * `withFunction`: the task's function changed too, and is said in the same change.
 */
function declarationWords(name: string, taskName: string, withFunction: boolean): string {
  const hash = name.lastIndexOf("#");
  const file = name.slice(0, hash);
  const label = name.slice(hash + 1);
  const where =
    label === "default" ? `the flow's build function in ${file}`
    : label.startsWith("statement-") ? `the top-level statement of ${file} that declares it`
    : `its declaration in ${file}`;
  if (withFunction) return `the function of task \`${taskName}\` changed (in ${where})`;
  if (label === "default") return `the flow's build function in ${file} changed (task \`${taskName}\` is declared in it)`;
  if (label.startsWith("statement-")) return `the top-level statement of ${file} that declares task \`${taskName}\` changed`;
  return `the declaration of task \`${taskName}\` in ${file} changed (its settings or builder chain, not its function)`;
}

/** The changes between two sets of recorded values (a task's inputs, or the params it reads), named `${noun} \`name\``. */
function diffRecorded(a: Record<string, RecordedInput>, b: Record<string, RecordedInput>, field: string, noun: string, changes: IngredientChange[], checkouts: readonly string[]): void {
  for (const name of unionKeys(a, b)) {
    const before = own(a, name);
    const after = own(b, name);
    if (before?.sha256 === after?.sha256) continue;
    if (!before) {
      changes.push({ path: `${field}.${name}`, before: undefined, after: after!.value, message: `${noun} \`${name}\` was added` });
    } else if (!after) {
      changes.push({ path: `${field}.${name}`, before: before.value, after: undefined, message: `${noun} \`${name}\` was removed` });
    } else if ("value" in before && "value" in after) {
      const found = changes.length;
      diffValues(before.value, after.value, `${field}.${name}`, name, changes, noun, checkouts);
      // The hashes differ where the recorded JSON does not (a value that is not JSON data: a class
      // instance, a Set): still a change, and said as one.
      if (changes.length === found) {
        changes.push({
          path: `${field}.${name}`,
          before: before.value,
          after: after.value,
          message: `${noun} \`${name}\` changed in what its recorded JSON does not show (a value that is not JSON data, such as a class instance or a Set a schema made; sha256 ${before.sha256.slice(0, 12)} -> ${after.sha256.slice(0, 12)})`,
        });
      }
    } else {
      changes.push({
        path: `${field}.${name}`,
        before: before.value ?? { sha256: before.sha256 },
        after: after.value ?? { sha256: after.sha256 },
        message: `${noun} \`${name}\` changed (recorded by hash only: too large to show, or it held a secret; sha256 ${before.sha256.slice(0, 12)} -> ${after.sha256.slice(0, 12)})`,
      });
    }
  }
}

function diffValues(before: unknown, after: unknown, path: string, label: string, out: IngredientChange[], noun = "input", checkouts: readonly string[] = []): void {
  const file = fileChange(before, after, label, noun);
  if (file !== undefined) {
    out.push({ path, before, after, message: file });
    return;
  }
  if (isPlainRecord(before) && isPlainRecord(after) && !("$artifact" in before) && !("$artifact" in after)) {
    for (const k of unionKeys(before, after)) {
      if (hashValue(own(before, k)) === hashValue(own(after, k))) continue;
      diffValues(own(before, k), own(after, k), `${path}.${k}`, `${label}.${k}`, out, noun, checkouts);
    }
    return;
  }
  // Arrays of one length item by item (`rows[3].metric changed from 0.5 to 0.7`), so that a change
  // deep in a long list is named instead of two texts cut alike.
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    for (let k = 0; k < before.length; k++) {
      if (hashValue(before[k]) === hashValue(after[k])) continue;
      diffValues(before[k], after[k], `${path}[${k}]`, `${label}[${k}]`, out, noun, checkouts);
    }
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    out.push({ path, before, after, message: `${noun} \`${label}\` changed from ${before.length} items to ${after.length}: ${fromTo(before, after).slice("from ".length)}` });
    return;
  }
  let message: string;
  if (isArtifactDigest(before) && isArtifactDigest(after)) message = `${noun} \`${label}\` is an artifact whose content changed`;
  else if (before === undefined) message = `${noun} \`${label}\` was added with ${show(after)}`;
  else if (after === undefined) message = `${noun} \`${label}\` was removed (was ${show(before)})`;
  else message = checkoutPathChange(before, after, checkouts, `${noun} \`${label}\``) ?? `${noun} \`${label}\` changed ${fromTo(before, after)}`;
  out.push({ path, before, after, message });
}

/**
 * When `after` is a path inside one of `checkouts` and `before` is an absolute path that ends in
 * the same part below it (`/home/ci/a/repo/data/c.csv` then `/builds/x/repo/data/c.csv`): words
 * that say only the checkout's place changed and how to keep it out of the key, first (a miss
 * reason is cut to its start); undefined otherwise. Such a path (`fileURLToPath(new URL(...,
 * import.meta.url))`) misses in every clone at another place.
 */
function checkoutPathChange(before: unknown, after: unknown, checkouts: readonly string[], what: string): string | undefined {
  if (typeof before !== "string" || typeof after !== "string" || before === after || !isAbsolutePath(before)) return undefined;
  for (const folder of checkouts) {
    const base = folder.replace(/[\\/]+$/, "");
    if (!base) continue; // the working folder is / : every path is inside it
    if (!after.startsWith(base) || !/^[\\/]/.test(after.slice(base.length))) continue;
    const below = after.slice(base.length + 1);
    if (!below || !(before.endsWith(`/${below}`) || before.endsWith(`\\${below}`))) continue;
    const shown = below.replace(/\\/g, "/");
    return (
      `${what} changed only in the folder before \`${shown}\`, where the project is checked out (now ${base}): each checkout at another place misses. ` +
      `Pass a path relative to the project instead (\`${shown}\`, from the project's root, resolved in the task). It changed ${fromTo(before, after)}`
    );
  }
  return undefined;
}

function isAbsolutePath(text: string): boolean {
  return text.startsWith("/") || /^[A-Za-z]:[\\/]/.test(text);
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What stands for an input that names a file the task reads (TaskDefinition.inputFiles in @cairn/core): its value, and the file's content digest. */
interface FileDigest {
  $file: string;
  path: unknown;
}

function isFileDigest(value: unknown): value is FileDigest {
  return isPlainRecord(value) && typeof value.$file === "string" && "path" in value;
}

/** Words for a change of an input that counts by its file's content (``file `data` (/abs/iris.csv) changed``); undefined when neither side does. */
function fileChange(before: unknown, after: unknown, label: string, noun: string): string | undefined {
  const a = isFileDigest(before) ? before : undefined;
  const b = isFileDigest(after) ? after : undefined;
  if (!a && !b) return undefined;
  const pathA = a ? a.path : before;
  const pathB = b ? b.path : after;
  const named = (p: unknown) => (typeof p === "string" ? p : show(p));
  if (hashValue(pathA) !== hashValue(pathB)) return `${noun} \`${label}\` changed ${fromTo(pathA, pathB)}`;
  if (a && b) return `file \`${label}\` (${named(pathB)}) changed`;
  return b
    ? `file \`${label}\` (${named(pathB)}) now counts by its content (the earlier entry counted its path only)`
    : `file \`${label}\` (${named(pathA)}) is no longer counted by its content apart (it is now in the project folder, or names nothing)`;
}

function isArtifactDigest(value: unknown): value is ArtifactDigest {
  return isPlainRecord(value) && typeof value.$artifact === "string";
}

/**
 * `record[name]` when it is one of the record's own keys, else undefined: a name the user gave (an
 * input, a variable, a key in a value) may be `toString` or `constructor`, which a plain lookup in
 * a record read from JSON takes from Object.prototype (a function, where the key is absent).
 */
function own<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

function unionKeys(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

/** Longest value text a message shows whole. */
const SHOWN_MAX = 60;
/** Characters kept on each side of where two long values differ. */
const SHOWN_CONTEXT = 12;

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > SHOWN_MAX ? `${text.slice(0, SHOWN_MAX - 3)}...` : text;
}

/**
 * `from X to Y` for a value that changed. Long texts are shown around where they differ, their
 * common start and end dropped (`"...customers_v1.csv"` to `"...customers_v2.csv"`, with the
 * character where they part): cut each from its start, two paths or queries that differ near
 * their end read the same.
 */
function fromTo(before: unknown, after: unknown): string {
  const a = JSON.stringify(before) ?? String(before);
  const b = JSON.stringify(after) ?? String(after);
  if (a.length <= SHOWN_MAX && b.length <= SHOWN_MAX) return `from ${a} to ${b}`;
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (suffix < a.length - prefix && suffix < b.length - prefix && a[a.length - 1 - suffix] === b[b.length - 1 - suffix]) suffix++;
  const start = Math.max(0, prefix - SHOWN_CONTEXT);
  const cut = (text: string): string => {
    const end = Math.min(text.length, text.length - suffix + SHOWN_CONTEXT);
    let shown = text.slice(start, end);
    if (shown.length > SHOWN_MAX) shown = `${shown.slice(0, SHOWN_MAX - 3)}...`;
    else if (end < text.length) shown += "...";
    return (start > 0 ? "..." : "") + shown;
  };
  // Counted in the value itself for two strings (not in their JSON, quotes and escapes).
  let at = prefix;
  if (typeof before === "string" && typeof after === "string") for (at = 0; at < before.length && before[at] === after[at]; ) at++;
  return `from ${cut(a)} to ${cut(b)}${start > 0 ? ` (they differ from character ${at + 1} on)` : ""}`;
}
