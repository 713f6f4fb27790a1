import { existsSync, statSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CairnError, describeValue } from "@cairn/core";
import { type Flow, isFlow } from "@cairn/dsl";

/** The flow file is missing, or does not default-export a flow. */
export class FlowFileError extends CairnError {
  static override readonly code: string = "CAIRN_FLOW_FILE";
  override name = "FlowFileError";
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/** How a flow file is imported: `import()` through tsx, or compiled first (`cairn` without tsx). */
export type FlowImporter = (path: string) => Promise<Record<string, unknown>>;

/** What Node (with tsx) imports as a module. */
const FLOW_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx"]);

const importFile: FlowImporter = async (path) => (await import(pathToFileURL(path).href)) as Record<string, unknown>;

/** Imports a flow file (or takes the module already imported) and returns its default-exported flow. */
export async function loadFlow(
  file: string | undefined,
  from: { module?: Record<string, unknown> | undefined; importFlow?: FlowImporter | undefined } = {},
): Promise<Flow<any, any>> {
  const preloaded = from.module;
  if (!file) throw new FlowFileError("Expected a flow file, e.g. `cairn run flow.ts`; got none.", "");
  const path = resolve(file);
  if (!preloaded && !existsSync(path)) {
    throw new FlowFileError(`Flow file ${file} does not exist (looked at ${path}). Check the path.`, path);
  }
  // Said before importing: Node's answer to these ("Directory import ... is not supported") reads as the file's own error.
  if (!preloaded && statSync(path).isDirectory()) {
    throw new FlowFileError(`Expected a flow file, got the folder ${file}. Name the flow file in it, e.g. ${join(file, "flow.ts")}.`, path);
  }
  if (!preloaded && !FLOW_EXTENSIONS.has(extname(path))) {
    throw new FlowFileError(`Expected a flow file ending in ${[...FLOW_EXTENSIONS].join(", ")}, got ${file}.`, path);
  }
  let mod: Record<string, unknown>;
  try {
    mod = preloaded ?? (await (from.importFlow ?? importFile)(path));
  } catch (error) {
    // Cairn's own errors (a build error such as an OptionError, the compile's FlowFileError) say what they are.
    if (CairnError.is(error)) throw error;
    const what = error instanceof Error ? `${error.name}: ${error.message}` : describeValue(error);
    throw new FlowFileError(`Importing ${file} failed: its module code threw ${what}. Fix that code (or what it reads at import); \`tsx ${file}\` shows the same with its stack.`, path);
  }
  const exported = mod.default;
  if (exported === undefined) {
    throw new FlowFileError(
      `${file} has no default export. Export the flow to run: \`export default flow("name").build(...)\`.`,
      path,
    );
  }
  if (!isFlow(exported)) {
    throw new FlowFileError(
      `The default export of ${file} is ${describeValue(exported)}, not a flow. ` +
        `Export the result of flow("name").build(...).`,
      path,
    );
  }
  return exported;
}
