// Errors node:http's parser finds before a request reaches a route (garbage
// request line, bad chunk, negative Content-Length, Content-Length with
// Transfer-Encoding, oversized headers) get the same JSON `{"error"}` body as
// every other error, then the connection is closed: after a framing error
// nothing else on it can be trusted.
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'

/**
 * Responses of each connection not finished yet. A framing error after
 * pipelined requests (`POST ... 1GARBAGE`) must not cut off their answers:
 * the 400 waits for them, else a client that saw only the 400 retries a
 * write that was counted.
 */
const unfinished = new WeakMap<Socket, Set<{ req: IncomingMessage, closed: Promise<void> }>>()

/** Track a response of its connection until it is finished or its socket closes (answerClientError waits for it). */
export function trackResponse (req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket
  let set = unfinished.get(socket)
  if (set === undefined) unfinished.set(socket, set = new Set())
  const mine = set
  const entry = { req, closed: new Promise<void>(resolve => { res.once('close', resolve) }) }
  mine.add(entry)
  void entry.closed.then(() => { mine.delete(entry) })
}

/** Status and message for an llhttp error code (`HPE_*`) or a server timeout. */
export function clientErrorReply (code: string | undefined): { status: number, message: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW': return { status: 431, message: 'request headers too large' }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT': return { status: 408, message: 'request not received in time' }
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH': return { status: 400, message: 'bad Content-Length (negative, repeated, or sent with Transfer-Encoding)' }
    case 'HPE_INVALID_CHUNK_SIZE': return { status: 400, message: 'bad chunk size in a chunked body' }
    case 'HPE_INVALID_TRANSFER_ENCODING': return { status: 400, message: 'bad Transfer-Encoding' }
    case 'HPE_INVALID_METHOD': return { status: 400, message: 'bad request method' }
    case 'HPE_INVALID_URL': return { status: 400, message: 'bad request target' }
    case 'HPE_INVALID_VERSION': return { status: 400, message: 'bad HTTP version' }
    default: return { status: 400, message: 'malformed HTTP request' }
  }
}

/** `server.on('clientError', answerClientError)`. */
export function answerClientError (err: NodeJS.ErrnoException, socket: Socket): void {
  // The peer went away: just close.
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const { status, message } = clientErrorReply(err.code)
  // Requests received whole are answered first, in order; then the error
  // and close. (A request whose body the error cut is not waited for.)
  const earlier = [...unfinished.get(socket) ?? []].filter(r => r.req.complete).map(r => r.closed)
  if (earlier.length === 0) {
    answerRaw(socket, status, message)
    return
  }
  void Promise.all(earlier).then(() => {
    if (socket.writable) answerRaw(socket, status, message)
    else socket.destroy()
  })
}

/** Write a JSON error straight to a socket no response object owns, and close it. */
export function answerRaw (socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message })
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  // Do not wait for a peer that keeps the socket half-open.
  setTimeout(() => { socket.destroy() }, 1000).unref()
}
