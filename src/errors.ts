// Errors with a stable `code`. Every front end (HTTP, Redis protocol, gRPC,
// CLI) maps them through one table each (src/api/errors.ts for HTTP), so a
// failure reads the same whichever way a client came in. Kept free of heavy
// imports so the CLI can recognise them without loading libp2p or LevelDB.

export class CountdError extends Error {
  constructor (readonly code: string, message: string, readonly extra: Record<string, unknown> = {}) {
    super(message)
    this.name = new.target.name
  }
}

/** A start-up failure (port in use, bad address, ...). */
export class StartupError extends CountdError {
  constructor (message: string) { super('startup', message) }
}

export class DataDirLockedError extends StartupError {
  constructor (dir: string) {
    super(`data dir ${dir} is locked: another countd is using it`)
  }
}

/** Input that breaks a rule (name, increment, item, count): HTTP 400. */
export class BadInputError extends CountdError {
  constructor (message: string, extra: Record<string, unknown> = {}) { super('bad_input', message, extra) }
}

/** This replica may not acknowledge writes yet (no member knows its id): 503. */
export class NotJoinedError extends CountdError {
  constructor (message = 'this node has not joined its cluster yet (no member knows it); retry in a moment') { super('not_joined', message) }
}

/** A consistent read could not reach every member in time: 503 with bestGuess and unreachable. */
export class UnreachableError extends CountdError {
  constructor (message: string, readonly bestGuess: bigint | number, readonly unreachable: string[]) {
    super('unreachable', message, { bestGuess, unreachable })
  }
}

/** A write could not be made durable because the disk is full: 507. Nothing was counted. */
export class DiskFullError extends CountdError {
  constructor (message = 'disk full: the write was not made durable and was not counted; retry once space is freed') { super('disk_full', message) }
}

/** A write could not be made durable (I/O error): 503. Nothing was counted. */
export class StorageError extends CountdError {
  constructor (message: string) { super('storage', message) }
}

/** IDs cannot be issued now (slot not confirmed, clock went back too far): 503. */
export class IdsUnavailableError extends CountdError {
  constructor (message: string) { super('ids_unavailable', message) }
}

/** A retry reused an Idempotency-Key for a different increment: 422. */
export class IdempotencyConflictError extends CountdError {
  constructor (message: string) { super('idempotency_conflict', message) }
}
