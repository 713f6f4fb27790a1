import { CairnError } from "@cairn/core";

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
