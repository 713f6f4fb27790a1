/** The errors of @cairn/report. */
import { CairnError } from "@cairn/core";

/** The run a report was asked for is not a flow run of this tracker (none, or a task run). */
export class ReportRunError extends CairnError {
  static override readonly code: string = "CAIRN_REPORT_RUN";
  override name = "ReportRunError";
  constructor(
    message: string,
    /** The run id asked for. */
    readonly runId: string,
  ) {
    super(message);
  }
}
