// Per-protocol command metrics, with the label children cached (cachedLabels).
import { metrics, cachedLabels } from '../../metrics.js'

export interface Meter {
  /** Count one finished command and observe its latency (seconds since `startMs`). */
  done: (command: string, outcome: string, startMs: number) => void
}

export function commandMeter (protocol: 'resp' | 'grpc'): Meter {
  const latency = metrics.protocolLatency.labels(protocol)
  const commands = cachedLabels((command, outcome) => metrics.protocolCommands.labels(protocol, command, outcome))
  return {
    done (command, outcome, startMs) {
      commands(command, outcome).inc()
      latency.observe((performance.now() - startMs) / 1000)
    }
  }
}
