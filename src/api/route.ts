// One declaration per route: method, path, parameters, body rule and the
// answers it gives (status -> description and body schema). Dispatch
// (src/api/router.ts) and /openapi.json (src/api/openapi.ts) are both
// derived from these, so they cannot drift apart.
import type { IncomingMessage, ServerResponse } from 'node:http'

export type Schema = Record<string, unknown>

export interface Ctx {
  req: IncomingMessage
  res: ServerResponse
  /** Path parameters by name, percent-decoded. */
  params: Record<string, string>
  query: URLSearchParams
}

/** What a body of an answer is: plain text, JSON of a schema, or nothing. */
export type AnswerBody = { text: Schema } | { json: Schema } | { none: true }

export interface Answer { description: string, body: AnswerBody, headers?: string[] }

export interface ParamDoc { schema: Schema, description?: string, required?: boolean }

export interface BodyRule {
  /** Bytes; more is 413. */
  limit: number
  /** Content type -> schema, for the document. */
  content: Record<string, Schema>
  required: boolean
}

export interface RouteDecl {
  method: 'GET' | 'POST' | 'DELETE'
  /** "/counter/:name/value": literal segments and :params, matched exactly. */
  path: string
  summary: string
  params?: Record<string, ParamDoc>
  query?: Record<string, ParamDoc>
  headers?: Record<string, ParamDoc>
  body?: BodyRule
  /** Every status the route answers, errors included (401 is added for routes behind the token). */
  answers: Record<number, Answer>
  /** false: no bearer token needed (/health). */
  auth?: boolean
  handle: (ctx: Ctx) => Promise<void> | void
}

export const text = (description: string, schema: Schema = { type: 'string' }): Answer => ({ description, body: { text: schema } })
export const json = (description: string, schema: Schema = { type: 'object' }): Answer => ({ description, body: { json: schema } })
export const none = (description: string): Answer => ({ description, body: { none: true } })
export const error = (description: string, extra: Record<string, Schema> = {}): Answer => ({
  description,
  body: { json: { type: 'object', required: ['error', ...Object.keys(extra)], properties: { error: { type: 'string' }, ...extra } } }
})

/** The 503 of a consistent read that could not reach every member. */
export const unreachable = (): Answer => error('some member could not be reached in time (or this node has not joined yet)', {
  bestGuess: { type: 'integer', description: "this replica's value" },
  unreachable: { type: 'array', items: { type: 'string' } }
})

export const KiB = 1024
export const MiB = 1024 * 1024
/** Body limit of every route but the batch routes. */
export const BODY_LIMIT = 64 * KiB
/** Body limit of POST /counters and POST /items. */
export const BATCH_BODY_LIMIT = 4 * MiB
