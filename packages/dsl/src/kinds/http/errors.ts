/** Errors of the http kind. */
import { CairnError } from "@cairn/core";

/** An HTTP task's request failed for good (after its retries), or the response is not JSON. */
export class HttpTaskError extends CairnError {
  static override readonly code: string = "CAIRN_HTTP_TASK";
  override name = "HttpTaskError";
  /** A 4xx other than 408 and 429 will answer the same on a retry of the task. */
  override get retryable(): boolean {
    return !(this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429);
  }
  constructor(
    readonly nodeId: string,
    readonly method: string,
    /** The task's URL as shown: a password, a user name and query values hidden (`redactUri`). */
    readonly url: string,
    /** HTTP status of the last response, when there was one. */
    readonly status: number | undefined,
    /** Requests made. */
    readonly attempts: number,
    detail: string,
  ) {
    super(
      `Task "${nodeId}": ${method} ${url} failed${status !== undefined ? ` with HTTP ${status}` : ""}` +
        `${attempts > 1 ? ` after ${attempts} attempts` : ""}: ${detail}`,
    );
  }
}
