import { NotSerializableError, describeValue } from "../errors.ts";
import { isArtifact } from "./artifact.ts";
import { isRef } from "./ref.ts";

/**
 * Throws NotSerializableError unless `value` is JSON data or Artifacts (refs are
 * allowed where `allowRefs`). Strict on purpose: values that JSON would change
 * silently (NaN, Dates, Maps, class instances) would make cached outputs differ
 * from fresh ones.
 */
export function assertSerializable(value: unknown, where: string, options: { allowRefs?: boolean } = {}): void {
  const allowRefs = options.allowRefs === true;
  // The common case, every input and output of every task, walks without making path strings;
  // only a value that fails is walked again to name the place.
  if (isSerializable(value, allowRefs, [])) return;
  walk(value, "", where, allowRefs, []);
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
