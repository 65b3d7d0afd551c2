// A typed event with any number of listeners (unlike one assignable
// property, where the last assignment silently wins). The daemon attaches
// every listener, so src/daemon.ts shows who listens to what.

export class Listeners<T> {
  private readonly fns: Array<(value: T) => void> = []

  add (fn: (value: T) => void): void { this.fns.push(fn) }

  emit (value: T): void {
    for (const fn of this.fns) fn(value)
  }
}
