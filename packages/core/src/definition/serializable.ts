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
  walk(value, "", where, options.allowRefs === true, []);
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
