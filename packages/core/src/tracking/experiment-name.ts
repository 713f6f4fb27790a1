/**
 * The longest experiment name Cairn takes. MLflow's server refuses a longer one
 * (`MAX_EXPERIMENT_NAME_LENGTH`, counted in characters), and only when the flow's first run
 * is created, after its work may have started; the embedded store keeps the same limit, so that
 * a flow that records there records to a server too. Checked where a name enters: the flow's
 * name (its experiment's by default), the `experiment` run option, MLFLOW_EXPERIMENT_NAME and
 * the CLI's `--experiment`.
 */

/** Characters (code points) of an experiment name that MLflow's server accepts. */
export const EXPERIMENT_NAME_MAX_LENGTH = 500;

/**
 * Why `name` is too long for an experiment's name (`of 612 characters ("abc..."), over MLflow's
 * limit of 500`), or undefined when it fits.
 */
export function experimentNameTooLong(name: string): string | undefined {
  // UTF-16 units are never fewer than characters: most names need no count of characters.
  if (name.length <= EXPERIMENT_NAME_MAX_LENGTH) return undefined;
  const characters = [...name];
  if (characters.length <= EXPERIMENT_NAME_MAX_LENGTH) return undefined;
  return `of ${characters.length} characters (${JSON.stringify(characters.slice(0, 40).join(""))}...), over MLflow's limit of ${EXPERIMENT_NAME_MAX_LENGTH} characters for an experiment's name (kept on the embedded store too, so that what runs there runs on a server)`;
}
