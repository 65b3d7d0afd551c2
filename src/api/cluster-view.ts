// What the HTTP API needs from the network layer. The daemon implements it
// with the real Network; the API never imports net/ itself.
export interface ClusterView {
  listenAddrs: () => string[]
  peers: () => string[]
  isConnected: (id: string) => boolean
  /** Throws an Error with a user-facing message if an address is invalid. */
  checkAddrs: (actors: string[]) => void
  connect: (actors: string[]) => Promise<string[]>
}
