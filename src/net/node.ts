// The libp2p node: TCP + noise + yamux, identify, gossipsub.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { registry } from '../metrics.js'
import type { PrivateKey } from '@libp2p/interface'

export type CountdLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, pubsub: GossipSub }>

/** `swarmKey`: a libp2p private-network key; peers without the same key cannot connect. */
/** `libp2pMetrics`: register libp2p's own metrics (once per process: false for a second node in one process). */
export async function createNode (privateKey: PrivateKey, listen: string[], swarmKey?: Uint8Array, libp2pMetrics = true): Promise<CountdLibp2p> {
  return await createLibp2p({
    privateKey,
    ...(swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: swarmKey }) } : {}),
    addresses: { listen },
    transports: [tcp()],
    // libp2p's own metrics (connections, streams, bytes per protocol) on our /metrics.
    ...(libp2pMetrics ? { metrics: prometheusMetrics({ registry, collectDefaultMetrics: false }) } : {}),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Members are few and all wanted: never prune them for being many.
      maxConnections: 1000,
      dialTimeout: 3000,
      // After a heal or a pause every member redials at once and consistent
      // reads race fresh connections: libp2p's defaults (5 inbound
      // connections a second per host, 10 pending upgrades, 10 s upgrade
      // timeout) then refused a peer's reconnection for as long as it kept
      // retrying (chaos under CPU load, issue 15).
      inboundConnectionThreshold: 100,
      maxIncomingPendingConnections: 100,
      inboundUpgradeTimeout: 5000
    },
    connectionMonitor: {
      // Detect dead links (pauses, partitions) quickly so redial kicks in.
      pingInterval: 2000,
      pingTimeout: { minTimeout: 2000, maxTimeout: 5000 },
      abortConnectionOnPingFailure: true
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        emitSelf: false,
        allowPublishToZeroTopicPeers: true,
        // Every message is signed by its publisher; deltas are accepted only
        // for the publisher's own replica id (see gossip.ts).
        globalSignaturePolicy: 'StrictSign',
        // Every member dials every other member (membership), so publishing
        // each delta straight to every subscriber reaches the whole cluster in
        // one hop. Mesh forwarding and IHAVE gossip would only resend what
        // everyone already has (in a 3-node cluster they tripled the bytes
        // per delta); anti-entropy repairs whatever a broken link drops.
        floodPublish: true,
        D: 0,
        Dlo: 0,
        Dhi: 0,
        Dout: 0,
        Dscore: 0,
        Dlazy: 0,
        gossipFactor: 0,
        // IDONTWANT tells mesh peers not to forward a message one has: with
        // no mesh there is nothing to stop, and building it per received
        // delta cost ~2 µs of a receiver's CPU per replicated increment.
        idontwantMinDataSize: Number.POSITIVE_INFINITY,
        heartbeatInterval: 1000
      })
    }
  }) as unknown as CountdLibp2p
}
