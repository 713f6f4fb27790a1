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
  const seen = new Set<object>();
  const walk = (v: unknown, path: string): void => {
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
    if (options.allowRefs && isRef(obj)) return;
    if (seen.has(obj)) throw new NotSerializableError(where, path, "a circular reference");
    seen.add(obj);
    if (Array.isArray(obj)) {
      obj.forEach((item, i) => walk(item, `${path}[${i}]`));
    } else {
      const proto = Object.getPrototypeOf(obj);
      if (proto !== Object.prototype && proto !== null) throw new NotSerializableError(where, path, describeValue(obj));
      if (!isArtifact(obj)) {
        for (const [k, item] of Object.entries(obj)) walk(item, path ? `${path}.${k}` : k);
      }
    }
    seen.delete(obj);
  };
  walk(value, "");
}
