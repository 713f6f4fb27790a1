/**
 * The input stage of a task: its refs resolved to flow params and upstream outputs, then
 * validated by its input schema. The one place refs are resolved, for a run (inputs and flow
 * outputs), its look-ahead and `cairn plan` (where cache entries stand for upstream outputs).
 */
import type { FlowNode, TaskDefinition } from "../definition/flow-definition.ts";
import { isPlainObject, type RefValue, resolveRefs } from "../definition/ref.ts";
import { validateWithSchema } from "../definition/schema.ts";
import { InputValidationError, MissingOutputError } from "../errors.ts";

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
): unknown {
  return resolveRefs(value, (ref: RefValue) => {
    let v = ref.source === "param" ? params[ref.target] : outputOf(ref.target);
    if (taskOf && ref.source === "node" && ref.path.length && isPlainObject(v) && !Object.hasOwn(v, ref.path[0]!)) {
      const task = taskOf(ref.target);
      const output = ref.path[0]!;
      const absent = task?.absentOutputs && Object.hasOwn(task.absentOutputs, output) ? task.absentOutputs[output] : undefined;
      if (absent !== undefined) throw new MissingOutputError(ref.target, output, Object.keys(v), { absent }, nodeId, flowOutput);
      if (task?.writesOutputs && !task.outputSchema) throw new MissingOutputError(ref.target, output, Object.keys(v), task.writesOutputs, nodeId, flowOutput);
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
): Record<string, unknown> | Promise<Record<string, unknown>> {
  const raw = resolveValue(node.inputs, params, outputOf, taskOf, node.id) as Record<string, unknown>;
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
): Record<string, unknown> | Promise<Record<string, unknown>> {
  if (task.inputs) return task.inputs;
  try {
    const inputs = taskInputs(task.node, params, outputOf, taskOf);
    if (inputs instanceof Promise) return inputs.then((v) => (task.inputs = v));
    return (task.inputs = inputs);
  } catch (error) {
    return Promise.reject(error);
  }
}
