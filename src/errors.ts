// Failures a user can act on: the CLI prints them as one line and exits 1.
// Kept free of heavy imports so the CLI can recognise them without loading
// libp2p or LevelDB.

/** A start-up failure (port in use, bad address, ...). */
export class StartupError extends Error {}

export class DataDirLockedError extends StartupError {
  constructor (dir: string) {
    super(`data dir ${dir} is locked: another countd is using it`)
  }
}
