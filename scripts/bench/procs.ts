// The bench's own helper processes: the autocannon load generator and the
// bare node:http baseline server.
import { type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import type { LoadJob, LoadResult } from './loadgen.js'
import { portBlock, spawnScript } from './util.js'

const here = dirname(fileURLToPath(import.meta.url))

export class LoadGen {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (r: LoadResult[]) => void, reject: (e: Error) => void }>()

  private constructor (readonly proc: ChildProcess) {
    proc.on('message', (m: { id?: number, results?: LoadResult[], error?: string }) => {
      if (m.id === undefined) return
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.error !== undefined) p?.reject(new Error(`loadgen: ${m.error}`))
      else p?.resolve(m.results!)
    })
    proc.once('exit', code => {
      for (const p of this.pending.values()) p.reject(new Error(`loadgen exited with ${code}`))
      this.pending.clear()
    })
  }

  static async start (): Promise<LoadGen> {
    const proc = spawnScript(join(here, 'loadgen.js'), [], { ipc: true })
    await new Promise<void>((resolve, reject) => {
      proc.once('message', () => resolve())
      proc.once('exit', code => reject(new Error(`loadgen exited with ${code}`)))
    })
    return new LoadGen(proc)
  }

  /** Run the jobs concurrently in the load generator process. */
  async run (...jobs: LoadJob[]): Promise<LoadResult[]> {
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.proc.send({ id, jobs })
    })
  }

  close (): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM')
  }
}

export class Baseline {
  private constructor (readonly proc: ChildProcess, readonly url: string) {}

  static async start (): Promise<Baseline> {
    const port = await portBlock(1)
    const proc = spawnScript(join(here, 'baseline.js'), [String(port)])
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).once('line', () => resolve())
      proc.once('exit', code => reject(new Error(`baseline server exited with ${code}`)))
    })
    return new Baseline(proc, `http://127.0.0.1:${port}`)
  }

  close (): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL')
  }
}
