// The gRPC front end (SPEC §7): proto/countd/v1/countd.proto served with
// @grpc/grpc-js over the CountdService. Errors map by their stable `code`
// (src/errors.ts) to gRPC status codes; the API token travels as
// `authorization: Bearer TOKEN` metadata.
import { join } from 'node:path'
import { isUtf8 } from 'node:buffer'
import { packageRoot } from '../../paths.js'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { CountdService, ItemRef } from '../../service.js'
import { BadInputError, CountdError } from '../../errors.js'
import { checkName, checkIncrement, checkItemId } from '../resp/input.js'
import { MAX_ITEMS, MAX_IDS } from '../../validate.js'
import { liveTokenCheck, BEARER } from '../auth.js'
import { tokenGetter, type ListenerOptions, type RunningServer } from '../listener.js'
import { commandMeter } from '../resp/meter.js'

export const PROTO_PATH = join(packageRoot, 'proto', 'countd', 'v1', 'countd.proto')

/** How the proto is loaded, by the server and by clients that want the same shapes (uint64 as decimal strings). */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true }

export type GrpcServerOptions = ListenerOptions
export type { RunningServer }

const MAX_TIMEOUT_MS = 300000

/** gRPC status for each CountdError code (SPEC §7 and the HTTP mapping). */
const STATUS_OF: Record<string, grpc.status> = {
  bad_input: grpc.status.INVALID_ARGUMENT,
  unreachable: grpc.status.UNAVAILABLE,
  not_joined: grpc.status.UNAVAILABLE,
  storage: grpc.status.UNAVAILABLE,
  ids_unavailable: grpc.status.UNAVAILABLE,
  disk_full: grpc.status.RESOURCE_EXHAUSTED,
  not_implemented: grpc.status.UNIMPLEMENTED
}

export function loadCountdPackage (): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS))
}

function timeoutOf (ms: number, fallback: number): number {
  if (ms === 0) return fallback
  if (ms > MAX_TIMEOUT_MS) throw new BadInputError(`timeout_ms must be at most ${MAX_TIMEOUT_MS}`)
  return ms
}

type Handlers = Record<string, (req: any) => Promise<unknown>>

function handlers (service: CountdService, consistentTimeoutMs: number): Handlers {
  return {
    async Increment (req: { name: string, by: string }) {
      const name = checkName(req.name)
      const by = req.by === '0' ? 1n : checkIncrement(req.by)
      return { value: (await service.increment(name, by)).toString() }
    },
    async Get (req: { name: string, consistent: boolean, timeoutMs: number }) {
      const name = checkName(req.name)
      const value = req.consistent
        ? await service.consistentValue(name, timeoutOf(req.timeoutMs, consistentTimeoutMs))
        : service.value(name)
      return { value: value.toString() }
    },
    async AddItems (req: { items: ItemRef[] }) {
      if (req.items.length === 0 || req.items.length > MAX_ITEMS) throw new BadInputError(`items: 1 to ${MAX_ITEMS} per call, got ${req.items.length}`)
      const items = req.items.map((it, i) => {
        try {
          return { tenant: checkName(it.tenant, 'tenant'), id: checkItemId(it.id) }
        } catch (e: any) {
          throw new BadInputError(`items[${i}]: ${String(e.message)}`)
        }
      })
      return await service.addItems(items)
    },
    async CountItems (req: { tenant: string, consistent: boolean, timeoutMs: number }) {
      const tenant = checkName(req.tenant, 'tenant')
      const count = req.consistent
        ? await service.consistentItemCount(tenant, timeoutOf(req.timeoutMs, consistentTimeoutMs))
        : service.itemCount(tenant)
      return { count: String(count) }
    },
    async NextIds (req: { count: number }) {
      const count = req.count === 0 ? 1 : req.count
      if (count > MAX_IDS) throw new BadInputError(`count must be 1 to ${MAX_IDS}`)
      return { ids: (await service.nextIds(count)).map(id => id.toString()) }
    }
  }
}

/**
 * Calls `fn` with each length-delimited field (number, bytes) of a protobuf
 * message, until it answers false; false then. The message decoded already,
 * so its framing is sound.
 */
function everyBytesField (b: Uint8Array, fn: (field: number, bytes: Uint8Array) => boolean): boolean {
  let p = 0
  const varint = (): number => {
    let v = 0
    for (let scale = 1; ; scale *= 128) {
      const c = b[p++]
      v += (c & 0x7f) * scale
      if (c < 0x80 || p >= b.length) return v
    }
  }
  while (p < b.length) {
    const key = varint()
    const type = key % 8
    if (type === 0) varint()
    else if (type === 1) p += 8
    else if (type === 5) p += 4
    else if (type === 2) {
      const n = varint()
      if (!fn(Math.floor(key / 8), b.subarray(p, p + n))) return false
      p += n
    } else return true // groups (never in this proto): nothing to check
  }
  return true
}

/**
 * The index of the first AddItemsRequest item (field 1) whose id (Item
 * field 2) is not valid UTF-8, or -1. protobufjs decodes bad bytes to
 * U+FFFD, so two different ids would count as one item; HTTP refuses them.
 */
export function badUtf8Item (request: Uint8Array): number {
  let index = -1
  const ok = everyBytesField(request, (field, item) => field !== 1 || (++index, everyBytesField(item, (f, bytes) => f !== 2 || isUtf8(bytes))))
  return ok ? -1 : index
}

function toStatus (e: unknown): Partial<grpc.ServiceError> & { code: grpc.status, outcome: string } {
  if (e instanceof CountdError) {
    const metadata = new grpc.Metadata()
    if (e.code === 'unreachable') {
      metadata.set('countd-best-guess', String(e.extra.bestGuess))
      metadata.set('countd-unreachable', (e.extra.unreachable as string[]).join(','))
    }
    return { code: STATUS_OF[e.code] ?? grpc.status.UNKNOWN, details: e.message, metadata, outcome: e.code }
  }
  return { code: grpc.status.INTERNAL, details: 'internal error', outcome: 'internal' }
}

export async function startGrpcServer (service: CountdService, opts: GrpcServerOptions): Promise<RunningServer> {
  const log = opts.log.child({ component: 'grpc' })
  const meter = commandMeter('grpc')
  const pkg = loadCountdPackage() as any
  const definition = pkg.countd.v1.Countd.service as grpc.ServiceDefinition
  // Requests reach the handlers as bytes and are decoded there: grpc-js
  // answers a request it cannot decode with INTERNAL, and undecodable bytes
  // are the client's mistake (INVALID_ARGUMENT); AddItems also checks its ids' bytes.
  const rawDefinition: grpc.ServiceDefinition = Object.fromEntries(Object.entries(definition).map(([name, m]) => [name, { ...m, requestDeserialize: (b: Buffer) => b }]))
  const decode = (method: string, bytes: Buffer): unknown => {
    let req: unknown
    try {
      req = definition[method].requestDeserialize(bytes)
    } catch (e: any) {
      throw new BadInputError(`malformed ${method} request: ${String(e?.message ?? e)}`)
    }
    if (method === 'AddItems') {
      const bad = badUtf8Item(bytes)
      if (bad !== -1) throw new BadInputError(`items[${bad}]: id is not valid UTF-8`)
    }
    return req
  }
  const checkNow = liveTokenCheck(tokenGetter(opts.token))
  const authorized = (md: grpc.Metadata): boolean => {
    const check = checkNow()
    if (check === undefined) return true
    const m = BEARER.exec(String(md.get('authorization')[0] ?? ''))
    return m !== null && check(m[1])
  }
  const impl: grpc.UntypedServiceImplementation = {}
  for (const [method, run] of Object.entries(handlers(service, opts.consistentTimeoutMs ?? 5000))) {
    const label = method.toLowerCase()
    impl[method] = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
      const start = performance.now()
      if (!authorized(call.metadata)) {
        meter.done(label, 'auth', start)
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong API token: send metadata "authorization: Bearer TOKEN"' })
        return
      }
      new Promise(resolve => { resolve(run(decode(method, call.request as Buffer))) }).then(reply => {
        meter.done(label, 'ok', start)
        callback(null, reply)
      }, e => {
        const { outcome, ...status } = toStatus(e)
        if (outcome === 'internal') log.error({ err: e, method }, 'grpc call failed')
        meter.done(label, outcome, start)
        callback(status)
      })
    }
  }
  // grpc-js logs errors to stderr itself (a busy port printed a second line
  // before countd's own); its messages go to the node's log instead.
  grpc.setLogger({ error: (...a: unknown[]) => { log.debug({ grpc: a.join(' ') }, 'grpc-js') }, info: () => {}, debug: () => {} } as unknown as Partial<Console>)
  const server = new grpc.Server()
  server.addService(rawDefinition, impl)
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (e, p) => {
      if (e !== null) reject(e)
      else resolve(p)
    })
  })
  return {
    address: `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    port,
    async close () {
      await new Promise<void>(resolve => {
        // Finish calls in flight, then cut whatever is left after 2 s.
        const timer = setTimeout(() => { server.forceShutdown(); resolve() }, 2000)
        server.tryShutdown(() => { clearTimeout(timer); resolve() })
      })
    }
  }
}
