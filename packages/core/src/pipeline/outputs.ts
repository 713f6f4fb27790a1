import type { FlowNode } from "../definition/flow-definition.ts";
import { validateWithSchema } from "../definition/schema.ts";
import { assertSerializable, isSerializableValue, storedForm } from "../definition/serializable.ts";
import { NotSerializableError, OutputValidationError } from "../errors.ts";
import type { SecretRegistry } from "../run/secrets.ts";

/**
 * A task's output as it is stored and handed on: JSON data (or artifacts), holding no known
 * secret, valid by the task's output schema, in its stored JSON form. Synchronous unless the
 * task has an output schema.
 */
export function checkOutputs(node: FlowNode, output: unknown, secrets: SecretRegistry): unknown {
  const value = output === undefined ? {} : output;
  // The message's `where` is made only for a value that fails.
  if (!isSerializableValue(value)) {
    try {
      assertSerializable(value, `Task "${node.id}" output`);
    } catch (error) {
      if (NotSerializableError.is(error)) {
        throw new NotSerializableError(error.where, error.path || "(the whole output)", error.got);
      }
      throw error;
    }
  }
  secrets.assertClean(value, node.id, "its outputs");
  const schema = node.task.outputSchema;
  // Normalised once, here: the next task sees the stored JSON form, fresh or from the cache.
  if (!schema) return storedForm(value);
  return validateWithSchema(schema, value).then((r) => {
    if (!r.ok) {
      // A script hands back nothing when its process never wrote CAIRN_OUTPUTS: say that, not only what is missing.
      const wroteNone = output === undefined && node.task.kind === "script";
      throw new OutputValidationError(
        node.id,
        r.issues,
        wroteNone
          ? "The script wrote no outputs at all: write them with cairn_task.set_outputs({...}) (Python) or currentTask().setOutputs({...}) (TypeScript) before it exits, or drop its .output() schema."
          : undefined,
      );
    }
    // A schema may transform what it validates (a Date from a string): that value must be JSON data too.
    if (!isSerializableValue(r.value)) assertSerializable(r.value, `Task "${node.id}" output, as its output schema returned it,`);
    return storedForm(r.value);
  });
}
