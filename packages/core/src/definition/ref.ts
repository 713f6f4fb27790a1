/** A reference to a value that exists only once the flow runs: a task output or a flow param. */
export interface RefValue {
  readonly __cairnRef: true;
  /** `node`: an output of another node; `param`: a flow param. */
  readonly source: "node" | "param";
  /** Node id, or param name. */
  readonly target: string;
  /** Path inside the node's outputs (empty: the whole output). */
  readonly path: readonly string[];
  /** Identifies the flow build that made the ref, so refs cannot leak between flows. */
  readonly buildId: number;
}

/** True when `value` is a reference. */
export function isRef(value: unknown): value is RefValue {
  return typeof value === "object" && value !== null && (value as { __cairnRef?: unknown }).__cairnRef === true;
}

/** Human form of a ref for messages: `load.data`, `params.rows`. */
export function describeRef(ref: RefValue): string {
  const head = ref.source === "param" ? `params.${ref.target}` : ref.target;
  return ref.path.length ? `${head}.${ref.path.join(".")}` : head;
}

/** Calls `visit` on every ref inside a literal value (objects and arrays are walked). */
export function forEachRef(value: unknown, visit: (ref: RefValue, path: string) => void, path = ""): void {
  if (isRef(value)) return visit(value, path);
  if (Array.isArray(value)) {
    value.forEach((item, i) => forEachRef(item, visit, `${path}[${i}]`));
  } else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) forEachRef(v, visit, path ? `${path}.${k}` : k);
  }
}

/** Replaces every ref inside a value with what `resolve` returns. Values without refs are returned as they are. */
export function resolveRefs(value: unknown, resolve: (ref: RefValue) => unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  // Copies are made at the first change only; this runs for every task of every flow.
  // Arrays are tested first: they are never refs, and asking one for `__cairnRef` walks its prototypes.
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const r = resolveRefs(item, resolve);
      if (r !== item) (out ??= value.slice())[i] = r;
    }
    return out ?? value;
  }
  if (isRef(value)) return resolve(value);
  if (isPlainObject(value)) {
    let out: Record<string, unknown> | undefined;
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length; i++) {
      const item = value[keys[i]!];
      const r = resolveRefs(item, resolve);
      if (r !== item) {
        if (!out) {
          out = {};
          for (const k of keys) setOwnProperty(out, k, value[k]);
        }
        setOwnProperty(out, keys[i]!, r);
      }
    }
    return out ?? value;
  }
  return value;
}

/**
 * Sets an own property, also one named `__proto__` (JSON.parse makes it an own key), which an
 * assignment would take as the object's prototype: a copy would then lose the key.
 */
export function setOwnProperty(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** True for `{}` literals and `Object.create(null)` objects. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
