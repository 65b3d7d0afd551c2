// pino: JSON lines on stdout, human-readable when stdout is a terminal.
import { pino, type Logger } from 'pino'

export function createLogger (level: string): Logger {
  if (process.stdout.isTTY === true) {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } })
  }
  return pino({ level, base: { pid: process.pid } })
}
