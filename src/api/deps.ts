// What the route handlers need: the service for data, the replica for
// membership and idempotency keys, the cluster view for peers, the sorted
// name indexes for paged lists, and the settings SIGHUP may change.
import type { Replica } from '../replica.js'
import type { CountdService } from '../service.js'
import type { ClusterView } from './cluster-view.js'
import type { SortedNames } from '../sorted-names.js'

/** Settings that may change while running (SIGHUP). */
export interface ApiSettings {
  /** If set, every route but /health needs `Authorization: Bearer <token>`. */
  apiToken?: string
  /** Default timeout of consistent reads. */
  consistentTimeoutSec: number
}

export interface ApiDeps {
  service: CountdService
  replica: Replica
  cluster: ClusterView
  /** Every counter name / tenant, sorted, for GET /counters and GET /tenants. */
  counterNames: SortedNames
  tenantNames: SortedNames
  /** Advertised HTTP address (host:port) for /status. */
  http: string
  startedAt: number
  settings: ApiSettings
}
