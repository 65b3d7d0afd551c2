// The "physical limit" for the HTTP benchmarks: a bare node:http server that
// keeps counters in a Map (no durability, no replication, no validation
// beyond parsing the number). Same request shapes as countd:
//   POST /counter/:name  body "N"        -> 200 new value
//   POST /counters       body {"a": N}   -> 200 {"a": value, ...}
//   GET  /counter/:name/value            -> 200 value
//   POST /items     body [{id, tenant}]  -> 200 {"accepted", "added"} (a Set of strings per tenant)
//   GET  /ids/next                       -> 200 an increasing number
// Usage: node baseline.js PORT  (prints "listening PORT" when ready)
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 31999)
const counters = new Map<string, bigint>()
const items = new Map<string, Set<string>>()
let lastId = 0n

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const url = req.url ?? '/'
    const body = Buffer.concat(chunks).toString()
    if (req.method === 'POST' && url.startsWith('/counter/')) {
      const name = url.slice(9)
      const v = (counters.get(name) ?? 0n) + BigInt(body === '' ? 1 : body)
      counters.set(name, v)
      res.writeHead(200, { 'content-type': 'text/plain' }).end(v.toString())
    } else if (req.method === 'POST' && url === '/counters') {
      const out: Record<string, string> = {}
      for (const [name, n] of Object.entries(JSON.parse(body) as Record<string, number>)) {
        const v = (counters.get(name) ?? 0n) + BigInt(n)
        counters.set(name, v)
        out[name] = v.toString()
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
    } else if (req.method === 'POST' && url === '/items') {
      let added = 0
      const list = JSON.parse(body) as Array<{ id: string, tenant: string }>
      for (const { id, tenant } of list) {
        let set = items.get(tenant)
        if (set === undefined) items.set(tenant, set = new Set())
        if (!set.has(id)) { set.add(id); added++ }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: list.length, added }))
    } else if (req.method === 'GET' && url === '/ids/next') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end((++lastId).toString())
    } else if (req.method === 'GET' && url.startsWith('/counter/') && url.endsWith('/value')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end((counters.get(url.slice(9, -6)) ?? 0n).toString())
    } else {
      res.writeHead(404).end()
    }
  })
})
server.keepAliveTimeout = 65000
server.listen(port, '127.0.0.1', () => { process.stdout.write(`listening ${port}\n`) })
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
