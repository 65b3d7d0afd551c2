// HTTP errors, and the one table from the error codes of src/errors.ts to
// HTTP status codes.
import { CountdError } from '../errors.js'

/** An error that maps to an HTTP status with a JSON `{error}` body. */
export class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly extra: Record<string, unknown> = {}, readonly headers: Record<string, string> = {}) {
    super(message)
    this.name = 'HttpError'
  }
}

export const badRequest = (msg: string): HttpError => new HttpError(400, msg)

/** HTTP status of each `code` of src/errors.ts. */
export const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  bad_input: 400,
  not_joined: 503,
  unreachable: 503,
  disk_full: 507,
  storage: 503,
  ids_unavailable: 503,
  idempotency_conflict: 422,
  not_implemented: 501
}

/** Extra headers of some codes: a node that has not joined will shortly. */
const HEADERS_OF_CODE: Readonly<Record<string, Record<string, string>>> = {
  not_joined: { 'Retry-After': '1' }
}

/** Any thrown value as an HttpError: the table for CountdErrors, 500 for the unexpected. */
export function toHttpError (err: unknown): HttpError {
  if (err instanceof HttpError) return err
  if (err instanceof CountdError) {
    const status = STATUS_OF_CODE[err.code]
    if (status !== undefined) return new HttpError(status, err.message, err.extra, HEADERS_OF_CODE[err.code])
  }
  return new HttpError(500, 'internal error')
}
