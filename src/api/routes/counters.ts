// Counter routes (SPEC §2).
import type { ApiDeps } from '../deps.js'
import { type RouteDecl, type ParamDoc, text, json, error, unreachable, BODY_LIMIT, BATCH_BODY_LIMIT } from '../route.js'
import { checkName, readIncrement, readCounterBatch, MAX_BATCH, INCREMENT_RULE } from '../body.js'
import { badRequest } from '../errors.js'
import { sendJson, sendJsonText, sendPage, sendText } from '../reply.js'
import { timeoutMsOf, timeoutParam, pageOf, pageParams, nextSchema } from '../query.js'

const digits = { type: 'string', pattern: '^[0-9]+$' }
const increment = { type: 'integer', minimum: 1, maximum: 9007199254740991 }
const name: Record<string, ParamDoc> = { name: { schema: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,200}$' } } }
const badInput = error('invalid input (name, increment, query)')

/** The Idempotency-Key header, if any: 1-255 visible ASCII characters. */
function idempotencyKeyOf (header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  if (typeof header !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(header)) throw badRequest('Idempotency-Key must be 1-255 visible ASCII characters')
  return header
}

export function counterRoutes (d: ApiDeps): RouteDecl[] {
  return [{
    method: 'POST',
    path: '/counter/:name',
    summary: 'Increment a counter; answers after the increment is fsync\'d',
    params: name,
    query: { by: { schema: increment, description: 'the increment, instead of a body' } },
    headers: { 'Idempotency-Key': { schema: { type: 'string', maxLength: 255 }, description: 'a retry with the same key within the window counts once (per node)' } },
    body: { limit: BODY_LIMIT, required: false, content: { 'text/plain': digits, 'application/json': { type: 'object', properties: { value: increment } } } },
    answers: {
      200: text('new local value', digits),
      400: error(`invalid input: ${INCREMENT_RULE}`),
      413: error('body over 64 KiB'),
      422: error('Idempotency-Key reused for another increment'),
      503: error('not joined yet (Retry-After: 1), or the write failed (I/O error); nothing counted'),
      507: error('disk full; nothing counted')
    },
    handle: async ctx => {
      const counter = checkName(ctx.params.name)
      const key = idempotencyKeyOf(ctx.req.headers['idempotency-key'])
      const by = await readIncrement(ctx, BODY_LIMIT)
      const value = key === undefined
        ? await d.service.increment(counter, by)
        : await d.replica.incrementOnce(key, counter, by, Date.now())
      sendText(ctx.res, 200, value.toString())
    }
  }, {
    method: 'GET',
    path: '/counter/:name',
    summary: 'Counter with its per-replica counts',
    params: name,
    answers: {
      200: json('the counter', { type: 'object', properties: { name: { type: 'string' }, value: { type: 'integer' }, replicas: { type: 'object', additionalProperties: { type: 'integer' } } } }),
      400: badInput
    },
    handle: ctx => {
      const counter = checkName(ctx.params.name)
      sendJson(ctx.res, 200, { name: counter, value: d.service.value(counter), replicas: Object.fromEntries(d.replica.entriesOf(counter)) })
    }
  }, {
    method: 'GET',
    path: '/counter/:name/value',
    summary: "This replica's value (0 if unknown)",
    params: name,
    answers: { 200: text('value', digits), 400: badInput },
    handle: ctx => { sendText(ctx.res, 200, d.service.value(checkName(ctx.params.name)).toString()) }
  }, {
    method: 'GET',
    path: '/counter/:name/consistent_value',
    summary: 'Value after fetching and merging the state of every member',
    params: name,
    query: { timeout: timeoutParam },
    answers: { 200: text('value including every increment acknowledged before the read', digits), 400: badInput, 503: unreachable() },
    handle: async ctx => {
      const counter = checkName(ctx.params.name)
      const timeoutMs = timeoutMsOf(ctx.query, d.settings.consistentTimeoutSec)
      sendText(ctx.res, 200, (await d.service.consistentValue(counter, timeoutMs)).toString())
    }
  }, {
    method: 'GET',
    path: '/counters',
    summary: 'Counters, paged in name order',
    query: pageParams,
    answers: {
      200: json('one page', {
        type: 'object',
        required: ['counters', 'next'],
        properties: { counters: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, value: { type: 'integer' } } } }, next: nextSchema }
      }),
      400: error('bad limit, prefix or after')
    },
    handle: async ctx => {
      const page = d.counterNames.page(pageOf(ctx.query))
      // Names are plain ASCII of the name rule: no escaping needed; values are exact decimals.
      await sendPage(ctx.res, 'counters', page.names, n => `{"name":"${n}","value":${d.service.value(n).toString()}}`, page.next)
    }
  }, {
    method: 'POST',
    path: '/counters',
    summary: `Up to ${MAX_BATCH} increments, all-or-nothing, one durable commit`,
    body: {
      limit: BATCH_BODY_LIMIT,
      required: true,
      content: { 'application/json': { type: 'object', additionalProperties: increment }, 'application/x-ndjson': { type: 'string', description: 'lines of {"name": "...", "value": N}' } }
    },
    answers: {
      200: json('new local value of each counter', { type: 'object', additionalProperties: { type: 'integer' } }),
      400: badInput,
      413: error('body over 4 MiB'),
      503: error('not joined yet (Retry-After: 1), or the write failed; nothing counted'),
      507: error('disk full; nothing counted')
    },
    handle: async ctx => {
      const items = await readCounterBatch(ctx, BATCH_BODY_LIMIT)
      const values = await d.service.incrementMany(items)
      // Names are plain ASCII of the name rule (no escaping); values exact decimals.
      sendJsonText(ctx.res, 200, `{${items.map(([n], i) => `"${n}":${values[i].toString()}`).join(',')}}`)
    }
  }]
}
