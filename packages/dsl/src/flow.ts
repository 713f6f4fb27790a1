import {
  describeRef,
  EXPERIMENT_NAME_MAX_LENGTH,
  experimentNameTooLong,
  OptionError,
  isRef,
  buildFlowGraph,
  startFlowRun,
  type FlowDefinition,
  type FlowGraph,
  type FlowRun,
  type RunOptions,
} from "@cairn/core";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { nodeToRef, proxyKind, refProxy, withBuild } from "./build-context.ts";
import { flowBuilt, flowDeclared, runStarted } from "./flow-hooks.ts";
import type { Ref, SchemaInput, SchemaOutput, Unwire } from "./types.ts";

/** Refs to the flow's params, one per param. */
export type ParamRefs<P> = { readonly [K in keyof P]-?: Ref<P[K]> };

/** A built flow: run it, or inspect its graph. */
export interface Flow<ParamsIn = Record<string, unknown>, Outputs = Record<string, unknown>> {
  readonly name: string;
  /** The plain definition the engine runs. */
  readonly definition: FlowDefinition;
  /**
   * Validates the flow, opens its run in the tracker, and starts it; resolves to the run handle.
   * `options` and its `params` may be left out only when every param is optional or defaulted.
   */
  run(...options: RunArgs<ParamsIn>): Promise<FlowRun<Outputs>>;
  /** The validated graph; throws the same errors `run` would, without running anything. */
  graph(): FlowGraph;
  /** @internal Phantom types for inference helpers. */
  readonly __types?: { params: ParamsIn; outputs: Outputs };
}

/** `run()` options with typed params: `params` is required when the params schema has a required key. */
export type FlowRunOptions<ParamsIn> = Omit<RunOptions, "params"> & ({} extends ParamsIn ? { params?: ParamsIn | undefined } : { params: ParamsIn });

/** `run()`'s argument: optional only when no param is required (`{}` is valid params). */
type RunArgs<ParamsIn> = {} extends ParamsIn ? [options?: FlowRunOptions<ParamsIn>] : [options: FlowRunOptions<ParamsIn>];

/** A flow being declared. */
export interface FlowBuilder<ParamsIn, Params> {
  /** Declares the flow's params with any Standard Schema; `-p name=value` is validated against it. */
  params<S extends StandardSchemaV1>(schema: S): FlowBuilder<SchemaInput<S>, SchemaOutput<S>>;
  /** Declares the params' type, without run-time validation. */
  params<T extends Record<string, unknown>>(): FlowBuilder<T, T>;
  /**
   * Wires tasks together. Called once, synchronously: call tasks with literals or refs,
   * return the flow's outputs (refs or literals).
   */
  build<R extends Record<string, unknown> | void>(fn: (flow: { params: ParamRefs<Params> }) => R): Flow<ParamsIn, R extends void ? {} : Unwire<R>>;
}

/** The params type of a flow. */
export type InferParams<F> = F extends Flow<infer P, unknown> ? P : never;
/** The outputs type of a flow. */
export type InferFlowOutputs<F> = F extends Flow<any, infer O> ? O : never;

const FLOW_NAME = /^[A-Za-z0-9_][A-Za-z0-9_. -]*$/;

/**
 * Declares a flow.
 * @example
 * export default flow("demo").params(z.object({ n: z.number() })).build(({ params }) => {
 *   const d = double({ x: params.n });
 *   return { y: d.y };
 * });
 */
export function flow(name: string): FlowBuilder<{}, {}> {
  if (typeof name !== "string" || !FLOW_NAME.test(name)) {
    // An OptionError, as task() throws for its name: the flow is invalid (the CLI's exit 2), not a failed run.
    throw new OptionError("flow name", "a non-empty string of letters, digits, spaces, `_`, `.` and `-` (not starting with a space, `.` or `-`)", name);
  }
  // The flow's name is its experiment's unless another is named: MLflow would refuse it only at the first run.
  const tooLong = experimentNameTooLong(name);
  if (tooLong) {
    throw new OptionError(
      "flow name",
      `a name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters`,
      name,
      `Expected \`flow name\` to be at most ${EXPERIMENT_NAME_MAX_LENGTH} characters, got one ${tooLong}; the flow's name is its experiment's by default. Give the flow a shorter name.`,
    );
  }
  const builder = flowBuilder(name, undefined, false);
  // Before build(): a flow file that default-exports the builder (no .build(...)) is told so under tsx too.
  flowDeclared();
  return builder;
}

/** `typed`: params declared by type alone, `.params<T>()` (see FlowDefinition.paramsTyped). */
function flowBuilder(name: string, paramsSchema: StandardSchemaV1 | undefined, typed: boolean): FlowBuilder<any, any> {
  const builder: FlowBuilder<any, any> = {
    params: (schema?: StandardSchemaV1) => {
      if (schema !== undefined && typeof (schema as Partial<StandardSchemaV1>)["~standard"]?.validate !== "function") {
        throw new OptionError(`flow "${name}" .params()`, "a Standard Schema (zod, valibot, ...), or no argument with a type parameter (.params<T>())", schema);
      }
      return flowBuilder(name, schema, schema === undefined);
    },
    build: (fn: (flow: { params: any }) => Record<string, unknown> | void) => {
      const { result, context } = withBuild(name, (ctx) => fn({ params: refProxy("param", "", ctx.buildId) }));
      if (result !== undefined && (typeof result !== "object" || result === null || Array.isArray(result) || isRef(result) || proxyKind(result))) {
        // A node handle or `params` returned whole would read as an object with no outputs.
        throw notOutputs(name, result);
      }
      const definition: FlowDefinition = Object.freeze({
        name,
        ...(paramsSchema ? { paramsSchema } : typed ? { paramsTyped: true as const } : {}),
        nodes: Object.freeze([...context.nodes]),
        outputs: Object.freeze(Object.fromEntries(Object.entries(result ?? {}).map(([k, v]) => [k, nodeToRef(v, () => `flow "${name}" output \`${k}\``)]))),
        buildId: context.buildId,
      });
      const built: Flow<any, any> = {
        name,
        definition,
        // Async: whatever throws at the start (a hook, a bad option) is a rejection, as the type says.
        run: async (options?: FlowRunOptions<any>) => {
          runStarted();
          return startFlowRun(definition, options as RunOptions);
        },
        graph: () => buildFlowGraph(definition),
      };
      markFlow(built);
      flowBuilt(built);
      return built;
    },
  };
  Object.defineProperty(builder, FLOW_BUILDER_MARK, { value: name });
  return builder;
}

/**
 * The error for a build function's return that is not an object of outputs. A node or `params`
 * is named in words with its fix: as a value, core would quote the words and call them a string.
 */
function notOutputs(name: string, result: unknown): OptionError {
  const where = `flow "${name}" build function's return`;
  const expected = "an object of outputs by name, such as { model: train(...).model, report: r }, or nothing";
  const proxy = proxyKind(result);
  const named =
    proxy === "node"
      ? { got: `the node "${(result as { $id: string }).$id}" (a task's node)`, fix: "Return { name: node } to make its whole output a flow output, or { name: node.output } for one output." }
      : proxy === "param"
        ? { got: "the flow's params", fix: "Return the params you want as outputs by name, such as { rows: params.rows }." }
        : isRef(result)
          ? { got: `a reference (\`${describeRef(result)}\`)`, fix: "Return it under a name: { name: ref }." }
          : undefined;
  if (!named) return new OptionError(where, expected, result);
  return new OptionError(where, expected, named.got, `Expected \`${where}\` to be ${expected}, got ${named.got}. ${named.fix}`);
}

const FLOW_MARK = Symbol.for("cairn.flow");

function markFlow(f: Flow<any, any>): void {
  Object.defineProperty(f, FLOW_MARK, { value: true });
}

/** True when `value` is a flow built with `flow().build()`. */
export function isFlow(value: unknown): value is Flow<any, any> {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[FLOW_MARK] === true;
}

const FLOW_BUILDER_MARK = Symbol.for("cairn.flowBuilder");

/**
 * The flow's name when `value` is a flow being declared, `flow("name")` or its `.params(...)`,
 * not built: what a flow file that left out `.build(...)` default-exports. Undefined otherwise.
 */
export function flowBuilderName(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const name = (value as Record<symbol, unknown>)[FLOW_BUILDER_MARK];
  return typeof name === "string" ? name : undefined;
}
