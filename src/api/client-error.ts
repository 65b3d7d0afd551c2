// Errors node:http's parser finds before a request reaches a route (garbage
// request line, bad chunk, negative Content-Length, Content-Length with
// Transfer-Encoding, oversized headers) get the same JSON `{"error"}` body as
// every other error, then the connection is closed: after a framing error
// nothing else on it can be trusted.
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { STATUS_CODES } from 'node:http'

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
  // The peer went away, or a response is already on its way: just close.
  const inFlight = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy()
    return
  }
  const { status, message } = clientErrorReply(err.code)
  answerRaw(socket, status, message)
}

/** Write a JSON error straight to a socket no response object owns, and close it. */
export function answerRaw (socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message })
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  // Do not wait for a peer that keeps the socket half-open.
  setTimeout(() => { socket.destroy() }, 1000).unref()
}
