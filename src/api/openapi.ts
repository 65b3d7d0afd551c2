// The HTTP API as an OpenAPI 3 document, served at GET /openapi.json.
// test/api/openapi.test.ts keeps it and the router in step.

const text = (description: string): object => ({ description, content: { 'text/plain': { schema: { type: 'string', pattern: '^[0-9]+$' } } } })
const json = (description: string, schema: object = { type: 'object' }): object => ({ description, content: { 'application/json': { schema } } })
const error = (description: string): object => json(description, { $ref: '#/components/schemas/Error' })
const name = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9._~-]{1,200}$' } }
const common = { 400: error('invalid input'), 401: error('missing or wrong bearer token (with --api-token)') }

export const openapi = {
  openapi: '3.0.3',
  info: {
    title: 'countd',
    version: '1',
    description: 'Replicated grow-only counters. Counter values are unbounded: text answers are exact decimals; JSON answers write them as number literals.'
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
      Increment: { type: 'integer', minimum: 1, maximum: 9007199254740991 }
    }
  },
  security: [{ bearer: [] }],
  paths: {
    '/counter/{name}': {
      post: {
        summary: 'Increment a counter; answers after the increment is fsync\'d',
        parameters: [name,
          { name: 'by', in: 'query', schema: { $ref: '#/components/schemas/Increment' } },
          { name: 'Idempotency-Key', in: 'header', schema: { type: 'string', maxLength: 255 }, description: 'a retry with the same key within the window counts once (per node)' }],
        requestBody: {
          required: false,
          content: {
            'text/plain': { schema: { type: 'string', pattern: '^[0-9]+$' } },
            'application/json': { schema: { type: 'object', properties: { value: { $ref: '#/components/schemas/Increment' } } } }
          }
        },
        responses: { 200: text('new local value'), ...common, 413: error('body over 64 KiB'), 422: error('Idempotency-Key reused for another increment') }
      },
      get: {
        summary: 'Counter with its per-replica counts',
        parameters: [name],
        responses: { 200: json('the counter', { type: 'object', properties: { name: { type: 'string' }, value: { type: 'integer' }, replicas: { type: 'object', additionalProperties: { type: 'integer' } } } }), ...common }
      }
    },
    '/counter/{name}/value': {
      get: { summary: "This replica's value (0 if unknown)", parameters: [name], responses: { 200: text('value'), ...common } }
    },
    '/counter/{name}/consistent_value': {
      get: {
        summary: 'Value after fetching and merging the state of every member',
        parameters: [name, { name: 'timeout', in: 'query', schema: { type: 'number', exclusiveMinimum: true, minimum: 0, maximum: 300 } }],
        responses: {
          200: text('value including every increment acknowledged before the read'),
          ...common,
          503: json('some member could not be reached in time', { type: 'object', properties: { error: { type: 'string' }, bestGuess: { type: 'integer' }, unreachable: { type: 'array', items: { type: 'string' } } } })
        }
      }
    },
    '/counters': {
      get: { summary: 'All counters', responses: { 200: json('list', { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, value: { type: 'integer' } } } }), ...common } },
      post: {
        summary: 'Many increments, all-or-nothing, one durable ack',
        requestBody: { content: { 'application/json': { schema: { type: 'object', additionalProperties: { $ref: '#/components/schemas/Increment' } } }, 'application/x-ndjson': { schema: { type: 'string' } } } },
        responses: { 200: json('new value of each counter'), ...common, 413: error('body over 64 KiB') }
      }
    },
    '/config': {
      post: {
        summary: 'Connect to actors and add them as peers',
        requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['actors'], properties: { actors: { type: 'array', items: { type: 'string' } } } } } } },
        responses: { 204: { description: 'dialed (unreachable actors keep being retried)' }, ...common }
      }
    },
    '/members': { get: { summary: 'Members with addresses, connectivity, last seen and contribution', responses: { 200: json('members', { type: 'array', items: { type: 'object' } }), ...common } } },
    '/members/{id}': {
      delete: {
        summary: 'Retire a member that is gone for good (its increments stay counted)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 204: { description: 'retired' }, 401: common[401], 404: error('no such member'), 409: error('a node cannot retire itself') }
      }
    },
    '/status': { get: { summary: 'Node id, addresses, peers, members, counters, uptime', responses: { 200: json('status'), ...common } } },
    '/health': { get: { summary: 'Liveness (no token needed)', security: [], responses: { 200: text('ok') } } },
    '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...common } } },
    '/openapi.json': { get: { summary: 'This document', responses: { 200: json('OpenAPI 3 document') } } }
  }
}
