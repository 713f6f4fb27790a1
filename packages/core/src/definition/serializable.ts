import { NotSerializableError, describeValue } from "../errors.ts";
import { isArtifact } from "./artifact.ts";
import { isRef, setOwnProperty as define } from "./ref.ts";

/**
 * How deep objects and arrays may nest in a value: task inputs and outputs, map items, flow
 * params. The walks that check, store, copy and key a value recurse once per level; a value a few
 * thousand levels deep overflows the stack in one of them, far from the task that made it, with
 * nothing but "Maximum call stack size exceeded". Refused here instead, where the value enters.
 */
export const MAX_NESTING_DEPTH = 1000;

/**
 * Throws NotSerializableError unless `value` is JSON data or Artifacts (refs are
 * allowed where `allowRefs`). Strict on purpose: values that JSON would change
 * silently (NaN, Dates, Maps, class instances) would make cached outputs differ
 * from fresh ones.
 */
export function assertSerializable(value: unknown, where: string, options: { allowRefs?: boolean; fix?: string } = {}): void {
  const allowRefs = options.allowRefs === true;
  // The common case, every input and output of every task, walks without making path strings;
  // only a value that fails is walked again to name the place.
  if (isSerializable(value, allowRefs, [])) return;
  try {
    walk(value, "", where, allowRefs, []);
  } catch (error) {
    // The fix the error says by default (write it as an artifact) is a task's; a param's is not that.
    if (options.fix !== undefined && NotSerializableError.is(error)) throw new NotSerializableError(error.where, error.path, error.got, options.fix);
    throw error;
  }
}

/**
 * True when assertSerializable would not throw: for hot paths, which then call
 * assertSerializable only to get the error (and build its `where` only then).
 */
export function isSerializableValue(value: unknown, options: { allowRefs?: boolean } = {}): boolean {
  return isSerializable(value, options.allowRefs === true, []);
}

/** The same rules as `walk`, as a yes/no answer. */
function isSerializable(v: unknown, allowRefs: boolean, stack: object[]): boolean {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined":
      return true;
    case "number":
      return Number.isFinite(v);
    case "function":
    case "symbol":
    case "bigint":
      return false;
  }
  if (v === null) return true;
  const obj = v as object;
  if (stack.length >= MAX_NESTING_DEPTH && !(allowRefs && isRef(obj))) return false;
  if (Array.isArray(obj)) {
    if (stack.includes(obj)) return false;
    stack.push(obj);
    for (let i = 0; i < obj.length; i++) if (!isSerializable(obj[i], allowRefs, stack)) return false;
  } else {
    if (allowRefs && isRef(obj)) return true;
    if (stack.includes(obj)) return false;
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) return false;
    stack.push(obj);
    if (!isArtifact(obj)) {
      for (const k in obj) if (!isSerializable((obj as Record<string, unknown>)[k], allowRefs, stack)) return false;
    }
  }
  stack.pop();
  return true;
}

/** `stack` holds the objects on the current path: a repeat there is a cycle (shared, acyclic objects are fine). */
function walk(v: unknown, path: string, where: string, allowRefs: boolean, stack: object[]): void {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined":
      return;
    case "number":
      if (!Number.isFinite(v)) throw new NotSerializableError(where, path, `${v} (number)`);
      return;
    case "function":
    case "symbol":
    case "bigint":
      throw new NotSerializableError(where, path, describeValue(v));
  }
  if (v === null) return;
  const obj = v as object;
  if (allowRefs && isRef(obj)) return;
  if (stack.length >= MAX_NESTING_DEPTH) {
    // The path is as long as the value is deep: its start says where.
    const at = path.length > 80 ? `${path.slice(0, 80)}…` : path;
    throw new NotSerializableError(
      where,
      at,
      `objects and arrays nested more than ${MAX_NESTING_DEPTH} levels deep (the limit, so that no walk over the value overflows the stack; flatten it, or keep it in a file)`,
    );
  }
  if (stack.includes(obj)) throw new NotSerializableError(where, path, "a circular reference");
  stack.push(obj);
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) walk(obj[i], `${path}[${i}]`, where, allowRefs, stack);
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) throw new NotSerializableError(where, path, describeValue(obj));
    if (!isArtifact(obj)) {
      for (const k in obj) walk((obj as Record<string, unknown>)[k], path ? `${path}.${k}` : k, where, allowRefs, stack);
    }
  }
  stack.pop();
}

/**
 * `value` in its stored JSON form, the value `JSON.parse(JSON.stringify(value))` gives, for a
 * value assertSerializable accepts: object properties that are `undefined` are dropped, array
 * items that are `undefined` (or holes) become `null`, `-0` becomes `0`, and an object without a
 * prototype becomes a plain one. A task's output passes through here once, so the next task sees
 * the same value whether the output was just computed or restored from the cache. Returns
 * `value` itself, not a copy, when it is in that form already, as nearly every output is.
 */
export function storedForm<T>(value: T): T {
  return normalise(value) as T;
}

function normalise(v: unknown): unknown {
  if (typeof v === "number") return Object.is(v, -0) ? 0 : v;
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      const stored = item === undefined ? null : normalise(item);
      if (copy) copy.push(stored);
      else if (!Object.is(stored, item) || !(i in v)) (copy = v.slice(0, i)).push(stored); // Object.is: -0 === 0
    }
    return copy ?? v;
  }
  const obj = v as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined = Object.getPrototypeOf(obj) === null ? {} : undefined;
  const keys = Object.keys(obj);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const item = obj[key];
    const stored = item === undefined ? undefined : normalise(item);
    if (!copy && (item === undefined || !Object.is(stored, item))) {
      copy = {};
      for (let j = 0; j < i; j++) define(copy, keys[j]!, obj[keys[j]!]);
    }
    if (copy && stored !== undefined) define(copy, key, stored);
  }
  return copy ?? v;
}
