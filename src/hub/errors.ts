/**
 * The errors of fetching a model, each with a `code` a caller can act on (a page shows a token field for
 * "gated"; a build falls back to random weights on "network") and a message that names the model, the file
 * and what to do.
 */
import {WorkbenchError} from "../errors.js";

export type HubErrorCode =
  /** Not a Hub id or revision. */
  | "invalid-id"
  /** No such repository, revision or file. */
  | "not-found"
  /** The repository needs a token (or the token given has no access). */
  | "gated"
  /** 429 more times than retried, or a Retry-After longer than we wait. */
  | "rate-limited"
  /** No connection, or it dropped more times than retried. */
  | "network"
  /** The body was shorter than the file. */
  | "incomplete"
  /** The body is not the file: wrong hash, HTML instead of JSON, not a safetensors file. */
  | "corrupt"
  /** Another HTTP status. */
  | "http"
  /** The file arrived whole but could not be written to the cache. */
  | "cache-write";

export class HubError extends WorkbenchError {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    options?: {cause?: unknown}
  ) {
    super(message, options);
    this.name = "HubError";
  }
}
