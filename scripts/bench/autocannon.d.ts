// Just the slice of autocannon's programmatic API the benchmarks use
// (the package ships no types).
declare module 'autocannon' {
  export interface AutocannonRequest {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string | Buffer
    setupRequest?: (req: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest
  }
  export interface AutocannonOptions {
    url: string
    connections?: number
    duration?: number
    amount?: number
    pipelining?: number
    timeout?: number
    overallRate?: number
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    requests?: AutocannonRequest[]
    setupClient?: (client: unknown) => void
  }
  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    [percentile: string]: number
  }
  export interface AutocannonResult {
    duration: number
    start: Date
    finish: Date
    errors: number
    timeouts: number
    non2xx: number
    mismatches: number
    '2xx': number
    latency: Histogram & { totalCount: number }
    requests: Histogram & { sent: number }
    throughput: Histogram
  }
  function autocannon (opts: AutocannonOptions): Promise<AutocannonResult>
  export default autocannon
}
