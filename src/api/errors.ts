/** An error that maps to an HTTP status with a JSON `{error}` body. */
export class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly extra: Record<string, unknown> = {}, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

export const badRequest = (msg: string): HttpError => new HttpError(400, msg)
