// The OpenAPI 3 document, derived from the route declarations (served at
// GET /openapi.json): the same objects drive dispatch, so they cannot drift.
import type { RouteDecl, Answer, ParamDoc } from './route.js'

const errorSchema = { type: 'object', required: ['error'], properties: { error: { type: 'string' } } }

function content (a: Answer): object | undefined {
  if ('text' in a.body) return { 'text/plain': { schema: a.body.text } }
  if ('json' in a.body) return { 'application/json': { schema: a.body.json } }
  return undefined
}

function parameters (where: 'path' | 'query' | 'header', docs: Record<string, ParamDoc> | undefined): object[] {
  return Object.entries(docs ?? {}).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' ? true : p.required === true,
    schema: p.schema,
    ...(p.description !== undefined ? { description: p.description } : {})
  }))
}

/** The answers of a route as the document shows them (401 added behind the token). */
export function answersOf (r: RouteDecl): Record<number, Answer> {
  return r.auth === false
    ? r.answers
    : { ...r.answers, 401: { description: 'missing or wrong bearer token (with --api-token)', body: { json: errorSchema } } }
}

export function buildOpenApi (routes: readonly RouteDecl[]): { openapi: string, paths: Record<string, Record<string, unknown>>, [k: string]: unknown } {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const path = r.path.replace(/:([A-Za-z]+)/g, '{$1}')
    const responses: Record<string, unknown> = {}
    for (const [status, a] of Object.entries(answersOf(r))) {
      const c = content(a)
      responses[status] = { description: a.description, ...(c !== undefined ? { content: c } : {}) }
    }
    paths[path] ??= {}
    paths[path][r.method.toLowerCase()] = {
      summary: r.summary,
      ...(r.auth === false ? { security: [] } : {}),
      parameters: [...parameters('path', r.params), ...parameters('query', r.query), ...parameters('header', r.headers)],
      ...(r.body !== undefined
        ? { requestBody: { required: r.body.required, description: `at most ${r.body.limit} bytes (else 413)`, content: Object.fromEntries(Object.entries(r.body.content).map(([type, schema]) => [type, { schema }])) } }
        : {}),
      responses
    }
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'countd',
      version: '1',
      description: 'Replicated grow-only counters, distinct items per tenant and unique IDs. Counter values are unbounded: text answers are exact decimals; JSON answers write them as number literals. ' +
        'Every error is JSON {"error": "..."}; any path answers 404 when it matches no route and 405 when the method does not fit; a pre-routing parse error is 400 (431 for oversized headers).'
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema }
    },
    security: [{ bearer: [] }],
    paths
  }
}
