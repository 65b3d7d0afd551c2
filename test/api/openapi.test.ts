// /openapi.json is derived from the route declarations; check that it says
// what the server does: every route, its methods, and a body for every answer.
import { strict as assert } from 'node:assert'
import { declareRoutes, type ApiDeps } from '../../src/api/server.js'
import { buildOpenApi, answersOf } from '../../src/api/openapi.js'
import { Router } from '../../src/api/router.js'
import { STATUS_OF_CODE } from '../../src/api/errors.js'

// Declarations only read their dependencies when a request arrives.
const routes = declareRoutes({ settings: { consistentTimeoutSec: 5 } } as unknown as ApiDeps)
const doc = buildOpenApi(routes)

describe('OpenAPI document', () => {
  it('has exactly one operation per declared route', () => {
    const fromRoutes = routes.map(r => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`).sort()
    const fromDoc = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map(m => `${m.toUpperCase()} ${path}`)).sort()
    assert.deepEqual(fromDoc, fromRoutes)
    assert.equal(new Set(fromRoutes).size, fromRoutes.length, 'no route declared twice')
  })

  it('documents every declared answer with its body, and errors as {error}', () => {
    for (const r of routes) {
      const op = doc.paths[r.path.replace(/:([A-Za-z]+)/g, '{$1}')][r.method.toLowerCase()] as { responses: Record<string, { content?: Record<string, { schema: any }> }> }
      for (const [status, answer] of Object.entries(answersOf(r))) {
        const documented = op.responses[status]
        assert.ok(documented !== undefined, `${r.method} ${r.path} ${status}`)
        if ('none' in answer.body) {
          assert.equal(documented.content, undefined)
          continue
        }
        assert.ok(documented.content !== undefined, `${r.method} ${r.path} ${status} has a body`)
        if (Number(status) >= 400) {
          assert.deepEqual(documented.content['application/json'].schema.properties.error, { type: 'string' }, `${r.method} ${r.path} ${status} is {error}`)
        }
      }
      assert.ok(Object.keys(op.responses).some(s => s.startsWith('2')), `${r.method} ${r.path} has a success answer`)
      if (r.auth !== false) assert.ok(op.responses['401'] !== undefined)
      for (const p of r.path.split('/').filter(s => s.startsWith(':'))) assert.ok(r.params?.[p.slice(1)] !== undefined, `${r.path} documents ${p}`)
    }
  })

  it('answers only statuses the error table knows (or route-specific ones)', () => {
    const known = new Set([...Object.values(STATUS_OF_CODE), 200, 204, 401, 404, 409, 413])
    for (const r of routes) for (const s of Object.keys(r.answers)) assert.ok(known.has(Number(s)), `${r.method} ${r.path} ${s}`)
  })

  it('the router matches each declared path and nothing looser', () => {
    const router = new Router(routes)
    for (const r of routes) {
      const concrete = r.path.replace(/:[A-Za-z]+/g, 'x')
      assert.equal(router.match(r.method, concrete).path, r.path === '/ids/:id' && concrete === '/ids/x' ? '/ids/:id' : r.path)
      assert.equal(router.find(`${concrete}/`), undefined, `${concrete}/`)
      assert.equal(router.find(`/${concrete}`), undefined, `/${concrete}`)
    }
    assert.equal(router.match('GET', '/ids/next').path, '/ids/next', 'a literal beats a parameter')
  })
})
