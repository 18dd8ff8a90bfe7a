/**
 * The one error type the workbench throws on bad input. Its message names what was wrong — the file,
 * the tensor, the config field, the token, the hook path — so that a UI can show it as it is.
 */
export class WorkbenchError extends Error {
  constructor(message: string, options?: {cause?: unknown}) {
    super(message, options);
    this.name = "WorkbenchError";
  }
}
