// The OpenAPI document and the router describe the same API.
import { strict as assert } from 'node:assert'
import { openapi } from '../../src/api/openapi.js'
import { routeTable } from '../../src/api/server.js'

const fromServer = new Set(routeTable().flatMap(r => r.methods.map(m => `${m} ${r.path.replace(/:([a-z]+)/g, '{$1}')}`)))
const fromDoc = new Set(Object.entries(openapi.paths).flatMap(([path, ops]) => Object.keys(ops).map(m => `${m.toUpperCase()} ${path}`)))

describe('OpenAPI document', () => {
  it('documents every route the server answers', () => {
    assert.deepEqual([...fromServer].filter(r => !fromDoc.has(r)), [])
  })
  it('documents no route the server lacks', () => {
    assert.deepEqual([...fromDoc].filter(r => !fromServer.has(r)), [])
  })
  it('is an OpenAPI 3 document with responses for every operation', () => {
    assert.match(openapi.openapi, /^3\./)
    for (const ops of Object.values(openapi.paths)) {
      for (const op of Object.values(ops) as Array<{ responses?: object }>) assert.ok(op.responses !== undefined && Object.keys(op.responses).length > 0)
    }
  })
})
