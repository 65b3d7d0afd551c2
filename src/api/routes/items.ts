// Distinct items per tenant (SPEC §5).
import type { ApiDeps } from '../deps.js'
import { type RouteDecl, type ParamDoc, json, error, unreachable, BATCH_BODY_LIMIT } from '../route.js'
import { readItems, MAX_BATCH } from '../body.js'
import { badRequest } from '../errors.js'
import { sendJson, sendPage } from '../reply.js'
import { timeoutMsOf, timeoutParam, flagOf, pageOf, pageParams, nextSchema } from '../query.js'
import { isValidTenant, isValidItemId } from '../../validate.js'

const TENANT_RULE = 'tenant must be 1-200 characters of A-Z a-z 0-9 . _ ~ -'
const ID_RULE = 'id must be 1-256 bytes of UTF-8 without control characters'
const tenant: Record<string, ParamDoc> = { tenant: { schema: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,200}$' } } }
const item = { type: 'object', required: ['id', 'tenant'], properties: { id: { type: 'string', minLength: 1, description: '1-256 bytes of UTF-8, no control characters' }, tenant: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,200}$' } } }

function checkTenant (t: string): string {
  if (!isValidTenant(t)) throw badRequest(TENANT_RULE)
  return t
}

export function itemRoutes (d: ApiDeps): RouteDecl[] {
  return [{
    method: 'POST',
    path: '/items',
    summary: `Add 1-${MAX_BATCH} items, all-or-nothing; answers once durable`,
    body: {
      limit: BATCH_BODY_LIMIT,
      required: true,
      content: { 'application/json': { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: item }, 'application/x-ndjson': { type: 'string', description: 'one item object a line' } }
    },
    answers: {
      200: json('accepted = items in the request, added = pairs new to this replica', { type: 'object', required: ['accepted', 'added'], properties: { accepted: { type: 'integer' }, added: { type: 'integer' } } }),
      400: error('a bad item (its index in `index`) or a malformed body; nothing added', { index: { type: 'integer' } }),
      413: error('body over 4 MiB'),
      503: error('not joined yet (Retry-After: 1), or the write failed; nothing added'),
      507: error('disk full; nothing added')
    },
    handle: async ctx => {
      const items = await readItems(ctx, BATCH_BODY_LIMIT)
      sendJson(ctx.res, 200, await d.service.addItems(items))
    }
  }, {
    method: 'GET',
    path: '/items/:tenant/count',
    summary: 'Distinct items of a tenant (this replica, or every member with ?consistent=true)',
    params: tenant,
    query: { consistent: { schema: { type: 'boolean' } }, timeout: timeoutParam },
    answers: {
      200: json('the count', { type: 'object', required: ['count'], properties: { count: { type: 'integer' } } }),
      400: error('bad tenant or query'),
      503: unreachable()
    },
    handle: async ctx => {
      const t = checkTenant(ctx.params.tenant)
      const consistent = flagOf(ctx.query, 'consistent')
      const timeoutMs = timeoutMsOf(ctx.query, d.settings.consistentTimeoutSec)
      const count = consistent ? await d.service.consistentItemCount(t, timeoutMs) : d.service.itemCount(t)
      sendJson(ctx.res, 200, { count })
    }
  }, {
    method: 'GET',
    path: '/items/:tenant/has',
    summary: 'Whether this replica holds an item',
    params: tenant,
    query: { id: { schema: { type: 'string' }, required: true } },
    answers: {
      200: json('presence', { type: 'object', required: ['present'], properties: { present: { type: 'boolean' } } }),
      400: error('bad tenant or id')
    },
    handle: async ctx => {
      const t = checkTenant(ctx.params.tenant)
      const ids = ctx.query.getAll('id')
      if (ids.length !== 1 || !isValidItemId(ids[0])) throw badRequest(`give ?id= once: ${ID_RULE}`)
      sendJson(ctx.res, 200, { present: await d.service.hasItem(t, ids[0]) })
    }
  }, {
    method: 'GET',
    path: '/tenants',
    summary: 'Tenants with their item counts, paged in name order',
    query: pageParams,
    answers: {
      200: json('one page', {
        type: 'object',
        required: ['tenants', 'next'],
        properties: { tenants: { type: 'array', items: { type: 'object', properties: { tenant: { type: 'string' }, count: { type: 'integer' } } } }, next: nextSchema }
      }),
      400: error('bad limit, prefix or after')
    },
    handle: async ctx => {
      const page = d.tenantNames.page(pageOf(ctx.query))
      // Tenants are plain ASCII of the name rule: no escaping needed.
      await sendPage(ctx.res, 'tenants', page.names, t => `{"tenant":"${t}","count":${d.service.itemCount(t)}}`, page.next)
    }
  }]
}
