/**
 * The input stage of a task: its refs resolved to flow params and upstream outputs, then
 * validated by its input schema. The one place refs are resolved, for a run (inputs and flow
 * outputs), its look-ahead and `cairn plan` (where cache entries stand for upstream outputs).
 */
import type { FlowNode, TaskDefinition } from "../definition/flow-definition.ts";
import { isPlainObject, type RefValue, resolveRefs } from "../definition/ref.ts";
import { knownKeys, requiredKeys, validateWithSchema } from "../definition/schema.ts";
import { InputValidationError, MissingOutputError } from "../errors.ts";
import { closestName } from "../internal.ts";

/**
 * A ref to an output that a task's returned object lacks: a task whose outputs are what its code
 * returns (a function task, no {@link TaskDefinition.writesOutputs}), where an output may be
 * optional, so the ref is `undefined`, not an error. `nodeId` or `flowOutput` refers to it.
 */
export interface AbsentOutput {
  readonly upstream: string;
  readonly task: TaskDefinition;
  readonly output: string;
  /** The outputs it did return. */
  readonly outputs: readonly string[];
  readonly nodeId?: string | undefined;
  readonly flowOutput?: string | undefined;
  /**
   * Set when the upstream node is a map or sweep: its outputs are the group's own (`outputs`,
   * `failed`; a sweep's `outputs`, `params`, `trial`, `metric`, `trials`), not what `task`, its
   * items' task, returns, so neither that task's schema nor its return is what to look at.
   */
  readonly group?: "map" | "sweep" | undefined;
}

/** Told of each {@link AbsentOutput} met while refs are resolved at run time. */
export type AbsentOutputNotice = (absent: AbsentOutput) => void;

/**
 * `value` with every ref replaced: a param's value, or an upstream node's output (`outputOf`), then
 * the ref's path. With `taskOf`, a ref to an output that a process task never wrote (one of
 * {@link TaskDefinition.writesOutputs}), or that its options leave out ({@link TaskDefinition.absentOutputs}),
 * throws MissingOutputError naming `nodeId`, the task that refers to it (or `flowOutput`, the flow output that does); without, it is `undefined`
 * (`cairn plan`, which only looks).
 */
export function resolveValue(
  value: unknown,
  params: Record<string, unknown>,
  outputOf: (id: string) => unknown,
  taskOf?: (id: string) => TaskDefinition | undefined,
  nodeId?: string,
  flowOutput?: string,
  onAbsent?: AbsentOutputNotice,
): unknown {
  return resolveRefs(value, (ref: RefValue) => {
    let v = ref.source === "param" ? params[ref.target] : outputOf(ref.target);
    if (taskOf && ref.source === "node" && ref.path.length && isPlainObject(v) && !Object.hasOwn(v, ref.path[0]!)) {
      const task = taskOf(ref.target);
      const output = ref.path[0]!;
      const absent = task?.absentOutputs && Object.hasOwn(task.absentOutputs, output) ? task.absentOutputs[output] : undefined;
      if (absent !== undefined) throw new MissingOutputError(ref.target, output, Object.keys(v), { absent }, nodeId, flowOutput);
      if (task?.writesOutputs && !task.outputSchema) throw new MissingOutputError(ref.target, output, Object.keys(v), task.writesOutputs, nodeId, flowOutput);
      if (task && !task.writesOutputs && onAbsent) onAbsent({ upstream: ref.target, task, output, outputs: Object.keys(v), nodeId, flowOutput });
    }
    for (const key of ref.path) v = v == null ? undefined : (v as Record<string, unknown>)[key];
    return v;
  });
}

/** A task's inputs: resolved, then validated; synchronous when the task has no input schema. */
export function taskInputs(
  node: FlowNode,
  params: Record<string, unknown>,
  outputOf: (id: string) => unknown,
  taskOf?: (id: string) => TaskDefinition | undefined,
  onAbsent?: AbsentOutputNotice,
): Record<string, unknown> | Promise<Record<string, unknown>> {
  const raw = resolveValue(node.inputs, params, outputOf, taskOf, node.id, undefined, onAbsent) as Record<string, unknown>;
  return node.task.inputSchema ? validateInputs(node, raw) : raw;
}

/** A task's resolved inputs, validated by its input schema (as the schema returns them); as they are without one. */
export async function validateInputs(node: FlowNode, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
  const schema = node.task.inputSchema;
  if (!schema) return raw;
  const r = await validateWithSchema(schema, raw);
  if (!r.ok) throw new InputValidationError(node.id, r.issues);
  return r.value as Record<string, unknown>;
}

/**
 * The task's inputs, kept on it once known (the scheduler drops them when the task ends):
 * synchronous when they need no validation; a rejected promise, never a throw, when they fail.
 */
export function inputsOnce(
  task: { readonly node: FlowNode; inputs?: Record<string, unknown> },
  params: Record<string, unknown>,
  outputOf: (id: string) => unknown,
  taskOf?: (id: string) => TaskDefinition | undefined,
  onAbsent?: AbsentOutputNotice,
): Record<string, unknown> | Promise<Record<string, unknown>> {
  if (task.inputs) return task.inputs;
  try {
    const inputs = taskInputs(task.node, params, outputOf, taskOf, onAbsent);
    if (inputs instanceof Promise) return inputs.then((v) => (task.inputs = v));
    return (task.inputs = inputs);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Whether `task`'s output schema lets `output` be absent: it names it as optional, or it shows no
 * shape to tell by (it accepted the outputs without it). False without a schema, or for a name it
 * does not know (a typo).
 */
export function mayLackOutput(task: TaskDefinition, output: string): boolean {
  const schema = task.outputSchema;
  if (!schema) return false;
  const known = knownKeys(schema);
  if (known === undefined) return true;
  return known.includes(output) && !requiredKeys(schema)?.includes(output);
}

/** The warning for an {@link AbsentOutput}: who takes it, what the task returned, a likely name, and that it is passed on as `undefined`. */
export function absentOutputWarning(a: AbsentOutput): string {
  if (a.group) return absentGroupOutputWarning(a, a.group);
  const by = a.flowOutput !== undefined ? `Flow output "${a.flowOutput}" is ${a.upstream}.${a.output}` : a.nodeId !== undefined ? `Task "${a.nodeId}" takes ${a.upstream}.${a.output}` : `${a.upstream}.${a.output} is taken`;
  const meant = closestName(a.output, a.outputs);
  const to = a.flowOutput !== undefined ? "the flow output" : a.nodeId !== undefined ? `"${a.nodeId}"` : "it";
  return (
    `${by}, but task "${a.upstream}" returned no output "${a.output}" (its outputs: ${a.outputs.length ? a.outputs.map((o) => `"${o}"`).join(", ") : "none"}): ` +
    `the value passed on to ${to} is undefined.${meant !== undefined ? ` Did you mean "${meant}"?` : ""} ` +
    `Fix the name, or return "${a.output}" from "${a.upstream}"; an output it may leave out is declared optional in its .output(schema), which keeps this warning away.`
  );
}

/** {@link absentOutputWarning} for a map's or sweep's node, whose outputs are the group's, not its items' task's. */
function absentGroupOutputWarning(a: AbsentOutput, group: "map" | "sweep"): string {
  const by = a.flowOutput !== undefined ? `Flow output "${a.flowOutput}" is ${a.upstream}.${a.output}` : a.nodeId !== undefined ? `Task "${a.nodeId}" takes ${a.upstream}.${a.output}` : `${a.upstream}.${a.output} is taken`;
  const meant = closestName(a.output, a.outputs);
  const to = a.flowOutput !== undefined ? "the flow output" : a.nodeId !== undefined ? `"${a.nodeId}"` : "it";
  const read =
    group === "map"
      ? `an item's outputs are read through "outputs", one entry per item (${a.upstream}.outputs)`
      : `the best trial's outputs are read as ${a.upstream}.best.<output> (the ref ${a.upstream}.outputs.<output>)`;
  return (
    `${by}, but ${group} "${a.upstream}" has no output "${a.output}" (its outputs: ${a.outputs.map((o) => `"${o}"`).join(", ")}): ` +
    `the value passed on to ${to} is undefined.${meant !== undefined ? ` Did you mean "${meant}"?` : ""} Fix the name: ${read}.`
  );
}
