// The gRPC front end (SPEC §7): proto/countd/v1/countd.proto served with
// @grpc/grpc-js over the CountdService. Errors map by their stable `code`
// (src/errors.ts) to gRPC status codes; the API token travels as
// `authorization: Bearer TOKEN` metadata.
import { join } from 'node:path'
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
      run(call.request).then(reply => {
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
  server.addService(definition, impl)
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
