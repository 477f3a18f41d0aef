/**
 * An error the user can fix: bad flag, bad file, bad field. The CLI prints its message on one line and exits
 * with `exitCode`; it never prints a stack trace for one of these.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
