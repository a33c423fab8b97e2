/** Why a rehearsal failed (a denied call, a function the template cannot run). */
export class RehearsalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RehearsalError';
  }
}
