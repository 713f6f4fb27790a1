import type { FlowNode } from "../definition/flow-definition.ts";
import { validateWithSchema } from "../definition/schema.ts";
import { InputValidationError } from "../errors.ts";

/** A task's resolved inputs, validated by its input schema (as the schema returns them); as they are without one. */
export async function validateInputs(node: FlowNode, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
  const schema = node.task.inputSchema;
  if (!schema) return raw;
  const r = await validateWithSchema(schema, raw);
  if (!r.ok) throw new InputValidationError(node.id, r.issues);
  return r.value as Record<string, unknown>;
}
