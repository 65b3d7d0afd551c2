// Query parameters shared by several routes: timeouts, flags, paging.
import { badRequest } from './errors.js'
import type { PageQuery } from '../sorted-names.js'
import type { ParamDoc } from './route.js'

function single (query: URLSearchParams, name: string): string | null {
  if (query.getAll(name).length > 1) throw badRequest(`give ?${name}= once`)
  return query.get(name)
}

/** ?timeout=SEC in (0, 300] -> ms, else the default. */
export function timeoutMsOf (query: URLSearchParams, defaultSec: number): number {
  const t = single(query, 'timeout')
  if (t === null) return defaultSec * 1000
  if (!/^[0-9]+(\.[0-9]+)?$/.test(t) || Number(t) <= 0 || Number(t) > 300) throw badRequest('timeout must be a number of seconds in (0, 300]')
  return Math.max(1, Math.round(Number(t) * 1000))
}

/** ?NAME=true|false (absent = false). */
export function flagOf (query: URLSearchParams, name: string): boolean {
  const v = single(query, name)
  if (v === null || v === 'false') return false
  if (v === 'true') return true
  throw badRequest(`${name} must be true or false`)
}

export const DEFAULT_PAGE = 1000
export const MAX_PAGE = 10000

/** ?limit (1..10000, default 1000), ?prefix, ?after=CURSOR (the `next` of the previous page). */
export function pageOf (query: URLSearchParams): PageQuery {
  const limit = single(query, 'limit')
  if (limit !== null && (!/^[0-9]{1,6}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_PAGE)) throw badRequest(`limit must be an integer between 1 and ${MAX_PAGE}`)
  const prefix = single(query, 'prefix') ?? undefined
  const after = single(query, 'after') ?? undefined
  for (const [what, v] of [['prefix', prefix], ['after', after]] as const) {
    if (v !== undefined && v.length > 256) throw badRequest(`${what} must be at most 256 characters`)
  }
  return { limit: limit === null ? DEFAULT_PAGE : Number(limit), prefix, after }
}

export const timeoutParam: ParamDoc = { schema: { type: 'number', exclusiveMinimum: true, minimum: 0, maximum: 300 }, description: 'seconds (default: --consistent-timeout)' }
export const pageParams: Record<string, ParamDoc> = {
  limit: { schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE } },
  prefix: { schema: { type: 'string', maxLength: 256 }, description: 'only names starting with this' },
  after: { schema: { type: 'string', maxLength: 256 }, description: 'the `next` of the previous page' }
}
/** The `next` cursor of a page. */
export const nextSchema = { type: 'string', nullable: true, description: 'cursor for ?after= of the next page; null on the last page' }
