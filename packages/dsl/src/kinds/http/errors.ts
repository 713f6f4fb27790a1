/** Errors of the http kind. */
import { CairnError } from "@cairn/core";

/**
 * An HTTP task's request failed for good (after its retries), the response is not JSON, or the
 * request cannot succeed as it is (`final`: a redirect loop, a response over `maxResponseMB`, a
 * header value with a line break), which no retry of the task changes.
 */
export class HttpTaskError extends CairnError {
  static override readonly code: string = "CAIRN_HTTP_TASK";
  override name = "HttpTaskError";
  /** A final failure, or a 4xx other than 408 and 429, will answer the same on a retry of the task. */
  override get retryable(): boolean {
    if (this.final) return false;
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
    /** True when the same request fails the same way on every try (not a network error, a timeout, a 5xx or a 429). */
    readonly final = false,
  ) {
    super(
      `Task "${nodeId}": ${method} ${url} failed${status !== undefined ? ` with HTTP ${status}` : ""}` +
        `${attempts > 1 ? ` after ${attempts} attempts` : ""}: ${detail}`,
    );
  }
}
