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
export async function createNode (privateKey: PrivateKey, listen: string[], swarmKey?: Uint8Array): Promise<CountdLibp2p> {
  return await createLibp2p({
    privateKey,
    ...(swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: swarmKey }) } : {}),
    addresses: { listen },
    transports: [tcp()],
    // libp2p's own metrics (connections, streams, bytes per protocol) on our /metrics.
    metrics: prometheusMetrics({ registry, collectDefaultMetrics: false }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // Members are few and all wanted: never prune them for being many.
      maxConnections: 1000,
      dialTimeout: 3000
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
        // A counter cluster is small: send each delta to every subscriber
        // rather than waiting for the mesh to form after a (re)connect.
        floodPublish: true,
        heartbeatInterval: 700
      })
    }
  }) as unknown as CountdLibp2p
}
