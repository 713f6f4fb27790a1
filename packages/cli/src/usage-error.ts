import { CairnError } from "@cairn/core";

/** The command line is wrong: an unknown flag, a missing argument, a bad value. Exit code 2. */
export class UsageError extends CairnError {
  static override readonly code: string = "CAIRN_USAGE";
  override name = "UsageError";
}
