/**
 * The one rule for whether a failed attempt is tried again. The scheduler adds what only
 * it knows (the flow was stopped, the attempt was cancelled); everything an error can say
 * about itself is here.
 */

/**
 * Whether another attempt could help after `error`: false for a `NonRetryableError`, for
 * any Cairn error that says so (bad input, a bad definition, a missing secret), and for any
 * error, Cairn's or not, whose `retryable` property is `false`. It reads a property rather
 * than asking `instanceof`, so it holds for errors made by another copy of Cairn too.
 */
export function isRetryableError(error: unknown): boolean {
  return !(typeof error === "object" && error !== null && (error as { retryable?: unknown }).retryable === false);
}
