// Network namespaces for the chaos harness: one per node, a data link on a
// bridge (partition = move links to another bridge) and a separate
// management link per node so the harness never loses the HTTP API.
//
//   root ns:  cd-br0, cd-br1 (bridges)   cd-d<i> (data veth, on a bridge)
//             cd-m<i> 10.78.<i>.1/30     (management veth)
//   cd-n<i>:  eth0 10.77.0.<i>/24        mgmt0 10.78.<i>.2/30
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'

export const PREFIX = 'cd-'

function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

function quiet (fn: () => void): void {
  try { fn() } catch {}
}

export const dataIp = (i: number): string => `10.77.0.${i}`
export const mgmtIp = (i: number): string => `10.78.${i}.2`
export const nsName = (i: number): string => `${PREFIX}n${i}`

/** Whether we can create namespaces at all (root, iproute2). */
export function netnsAvailable (): string | undefined {
  if (process.getuid?.() !== 0) return 'the chaos harness needs root (network namespaces)'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' })
  } catch {
    return 'the chaos harness needs iproute2 (`ip netns`)'
  }
  return undefined
}

/**
 * Remove every namespace, link and bridge this harness may have left behind,
 * killing the processes still inside (deleting a namespace does not).
 */
export function cleanup (): void {
  let names: string[] = []
  quiet(() => { names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map(l => l.split(' ')[0]) })
  for (const n of names) {
    if (!n.startsWith(PREFIX)) continue
    quiet(() => {
      for (const pid of execFileSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).split('\n').filter(p => p !== '')) {
        quiet(() => process.kill(Number(pid), 'SIGCONT'))
        quiet(() => process.kill(Number(pid), 'SIGKILL'))
      }
    })
    quiet(() => ip('netns', 'del', n))
  }
  let links: string[] = []
  quiet(() => { links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map(l => l.split(': ')[1]?.split('@')[0] ?? '') })
  for (const l of links) if (l.startsWith(PREFIX)) quiet(() => ip('link', 'del', l))
}

const LOCK = '/tmp/countd-chaos.lock'

/** Whether this process holds the lock (only then may it tear the namespaces down). */
export const holdsLock = (): boolean => {
  try { return Number(readFileSync(LOCK, 'utf8')) === process.pid } catch { return false }
}

/** One run at a time: two runs would delete each other's namespaces. */
export function lock (): void {
  try {
    writeFileSync(LOCK, String(process.pid), { flag: 'wx' })
    return
  } catch {}
  const holder = Number(readFileSync(LOCK, 'utf8'))
  let alive = false
  try { process.kill(holder, 0); alive = holder !== process.pid } catch {}
  if (alive) throw new Error(`another chaos run (pid ${holder}) is using the namespaces; wait for it or remove ${LOCK}`)
  writeFileSync(LOCK, String(process.pid))
}

export function unlock (): void {
  if (holdsLock()) rmSync(LOCK, { force: true })
}

export function setup (nodes: number): void {
  lock()
  cleanup()
  for (const br of [`${PREFIX}br0`, `${PREFIX}br1`]) {
    ip('link', 'add', br, 'type', 'bridge')
    ip('link', 'set', br, 'up')
  }
  for (let i = 1; i <= nodes; i++) {
    const ns = nsName(i)
    ip('netns', 'add', ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('link', 'add', `${PREFIX}d${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    ip('link', 'set', `${PREFIX}d${i}`, 'master', `${PREFIX}br0`)
    ip('link', 'set', `${PREFIX}d${i}`, 'up')
    ip('-n', ns, 'addr', 'add', `${dataIp(i)}/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('link', 'add', `${PREFIX}m${i}`, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', ns)
    ip('addr', 'add', `10.78.${i}.1/30`, 'dev', `${PREFIX}m${i}`)
    ip('link', 'set', `${PREFIX}m${i}`, 'up')
    ip('-n', ns, 'addr', 'add', `${mgmtIp(i)}/30`, 'dev', 'mgmt0')
    ip('-n', ns, 'link', 'set', 'mgmt0', 'up')
  }
}

/** Put the given nodes' data links on bridge 1 (cut off from bridge 0). */
export function partition (side: number[]): void {
  for (const i of side) ip('link', 'set', `${PREFIX}d${i}`, 'master', `${PREFIX}br1`)
}

export function heal (nodes: number): void {
  for (let i = 1; i <= nodes; i++) ip('link', 'set', `${PREFIX}d${i}`, 'master', `${PREFIX}br0`)
}

let netemWorks: boolean | undefined

/**
 * Whether this kernel has sch_netem. (Some VM kernels lack it; then
 * `degrade` falls back to a token-bucket rate limit, which still queues,
 * delays and drops packets, just not at random.)
 */
export function hasNetem (): boolean {
  if (netemWorks === undefined) {
    const ns = `${PREFIX}probe`
    quiet(() => ip('netns', 'del', ns))
    try {
      ip('netns', 'add', ns)
      ip('netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms')
      netemWorks = true
    } catch {
      netemWorks = false
    } finally {
      quiet(() => ip('netns', 'del', ns))
    }
  }
  return netemWorks
}

/** Packet loss and delay on a node's data link (tc netem, or tbf where netem is missing). */
export function degrade (i: number, lossPct: number, delayMs: number): void {
  const qdisc = hasNetem()
    ? ['netem', 'loss', `${lossPct}%`, 'delay', `${delayMs}ms`, `${Math.round(delayMs / 4)}ms`]
    : ['tbf', 'rate', '256kbit', 'burst', '4kb', 'latency', `${delayMs}ms`]
  ip('netns', 'exec', nsName(i), 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', ...qdisc)
}

export function undegrade (i: number): void {
  quiet(() => ip('netns', 'exec', nsName(i), 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'))
}
