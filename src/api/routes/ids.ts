// Unique, time-ordered 64-bit IDs (SPEC §6).
import type { ApiDeps } from '../deps.js'
import { type RouteDecl, text, json, error } from '../route.js'
import { badRequest } from '../errors.js'
import { sendJson, sendText } from '../reply.js'
import { parseId, decodeId, idTime } from '../../ids/snowflake.js'
import { MAX_IDS } from '../../validate.js'

const idString = { type: 'string', pattern: '^[0-9]{1,19}$' }
const unavailable = error('IDs cannot be issued now (node slot not confirmed by every member, or the clock went back too far)')

export function idRoutes (d: ApiDeps): RouteDecl[] {
  return [{
    method: 'GET',
    path: '/ids/next',
    summary: 'One cluster-unique, time-ordered ID',
    answers: { 200: text('the ID in decimal', idString), 503: unavailable, 501: error('IDs are not available in this build') },
    handle: async ctx => {
      const [id] = await d.service.nextIds(1)
      sendText(ctx.res, 200, id.toString())
    }
  }, {
    method: 'GET',
    path: '/ids',
    summary: `1-${MAX_IDS} IDs, increasing, as decimal strings`,
    query: { count: { schema: { type: 'integer', minimum: 1, maximum: MAX_IDS, default: 1 } } },
    answers: {
      200: json('the IDs', { type: 'object', required: ['ids'], properties: { ids: { type: 'array', items: idString } } }),
      400: error(`count must be 1-${MAX_IDS}`),
      503: unavailable,
      501: error('IDs are not available in this build')
    },
    handle: async ctx => {
      const counts = ctx.query.getAll('count')
      if (counts.length > 1 || (counts.length === 1 && !(/^[0-9]{1,5}$/.test(counts[0]) && Number(counts[0]) >= 1 && Number(counts[0]) <= MAX_IDS))) {
        throw badRequest(`count must be an integer between 1 and ${MAX_IDS}`)
      }
      const ids = await d.service.nextIds(counts.length === 0 ? 1 : Number(counts[0]))
      sendJson(ctx.res, 200, { ids: ids.map(String) })
    }
  }, {
    method: 'GET',
    path: '/ids/:id',
    summary: 'What an ID says: time, node slot and sequence',
    params: { id: { schema: idString } },
    answers: {
      200: json('the decoded ID', { type: 'object', required: ['id', 'time', 'node', 'sequence'], properties: { id: idString, time: { type: 'string', format: 'date-time' }, node: { type: 'integer', minimum: 0, maximum: 1023 }, sequence: { type: 'integer', minimum: 0, maximum: 4095 } } }),
      400: error('not a valid ID (decimal, below 2^63)')
    },
    handle: ctx => {
      const id = parseId(ctx.params.id)
      if (id === undefined) throw badRequest('not a valid ID: a decimal number below 2^63')
      const { slot, sequence } = decodeId(id)
      sendJson(ctx.res, 200, { id: id.toString(), time: idTime(id), node: slot, sequence })
    }
  }]
}
