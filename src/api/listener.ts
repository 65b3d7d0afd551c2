// What the Redis-protocol and gRPC front ends share: how they are started
// and what a running one offers.
import type { Logger } from 'pino'

export interface ListenerOptions {
  host: string
  port: number
  /**
   * The API token, read at each use so a SIGHUP that changes it applies;
   * none = no authentication (Redis: any username but "default" is refused, as in Redis).
   */
  token?: string | (() => string | undefined)
  log: Logger
  /** Timeout of consistent reads that do not give their own (default 5 s). */
  consistentTimeoutMs?: number
}

export interface RunningServer {
  /** host:port actually bound (port 0 picks one). */
  address: string
  port: number
  close: () => Promise<void>
}

/** The token as a getter, whether it was given as a value or a getter. */
export function tokenGetter (token: ListenerOptions['token']): () => string | undefined {
  return typeof token === 'function' ? token : () => token
}
