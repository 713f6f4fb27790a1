import type { Artifact, RefValue } from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";

declare const refType: unique symbol;
declare const unsetBrand: unique symbol;
declare const maybeBrand: unique symbol;

/** A typed reference to a value that exists once the flow runs: a task output or a flow param. */
export interface Ref<T> extends RefValue {
  /** Phantom: the type of the value the reference stands for. */
  readonly [refType]: T;
}

/** A reference whose value may be missing: an output of a node that may be skipped (it has a condition). */
export interface MaybeRef<T> extends Ref<T> {
  readonly [maybeBrand]: true;
}

/** Marks a builder slot that was not set. */
export interface Unset {
  readonly [unsetBrand]: true;
}

/** Flattens an intersection for readable hovers. */
export type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** What an input accepts: the value itself, or a reference to a value of that type, at any depth. */
export type Wire<T> =
  | Ref<T>
  | (T extends Artifact
      ? T
      : T extends readonly (infer E)[]
        ? readonly Wire<E>[]
        : T extends (...args: never[]) => unknown
          ? T
          : T extends object
            ? { [K in keyof T]: Wire<T[K]> }
            : T);

/** The inputs object a task call accepts. */
export type WireInputs<I> = { [K in keyof I]: Wire<I[K]> };

/**
 * The value a wired value stands for: refs replaced by their types, and a node handle (a task's,
 * a map's or a sweep's, which stands for its whole output wherever a value goes) by its output's.
 */
export type Unwire<T> = T extends MaybeRef<infer V>
  ? V | undefined
  : T extends Ref<infer V>
    ? V
    : T extends Artifact
      ? T
      : T extends { readonly $id: string; readonly $out: MaybeRef<infer V> }
        ? V | undefined
        : T extends { readonly $id: string; readonly $out: Ref<infer V> }
          ? V
          : T extends readonly unknown[]
            ? { [K in keyof T]: Unwire<T[K]> }
            : T extends object
              ? Simplify<{ [K in keyof T]: Unwire<T[K]> }>
              : T;

/** True when `T` is `any`. @internal */
export type IsAny<T> = 0 extends 1 & T ? true : false;

/**
 * The outputs of a task that returns `any` (`JSON.parse`, `res.json()`): any name, typed `any`,
 * as `any` lets any property through elsewhere. (As a conditional type's subject `any` takes both
 * branches, and their union with `unknown` left no outputs at all.) Not `Ref<any>`: under
 * `noUncheckedIndexedAccess`, as `cairn init` sets it, a name read through an index signature is
 * `| undefined`, which no required input takes.
 */
type AnyOutputs = { readonly [name: string]: any };

/** What calling a task inside `build` returns: one typed ref per output, plus the node id and the whole output. */
export type Node<O> = (IsAny<O> extends true ? AnyOutputs : O extends Record<string, unknown> ? { readonly [K in keyof O]-?: Ref<O[K]> } : unknown) & {
  /** The node's id in the flow. */
  readonly $id: string;
  /** A reference to the whole output. */
  readonly $out: Ref<O>;
};

/** What calling a task with a condition returns: as {@link Node}, each ref a {@link MaybeRef}. */
export type MaybeNode<O> = (IsAny<O> extends true ? AnyOutputs : O extends Record<string, unknown> ? { readonly [K in keyof O]-?: MaybeRef<O[K]> } : unknown) & {
  /** The node's id in the flow. */
  readonly $id: string;
  /** A reference to the whole output, missing when the node is skipped. */
  readonly $out: MaybeRef<O>;
};

/** The type a Standard Schema accepts. */
export type SchemaInput<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;
/** The type a Standard Schema produces. */
export type SchemaOutput<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;

/** Replaces Unset by a default. */
export type OrDefault<T, D> = T extends Unset ? D : T;
