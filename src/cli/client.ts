// The CLI's one HTTP client for a running countd: every client command
// (inc, get, status, members, forget, items, id) goes through callApi.
import { CliError } from './errors.js'
import type { ApiTarget } from './options.js'

export interface ApiReply { status: number, text: string }

export interface CallOptions {
  body?: string
  /** Content-Type of the body (default text/plain). */
  contentType?: string
  timeoutMs?: number
}

export async function callApi ({ api, apiToken }: ApiTarget, method: string, path: string, bodyOrOptions?: string | CallOptions, timeoutMs = 30000): Promise<ApiReply> {
  const o: CallOptions = typeof bodyOrOptions === 'object' ? bodyOrOptions : { body: bodyOrOptions, timeoutMs }
  let url: URL
  try {
    url = new URL(path, api.endsWith('/') ? api : `${api}/`)
  } catch {
    throw new CliError(`--api must be a URL like http://127.0.0.1:7777, got "${api}"`, 2)
  }
  try {
    const res = await fetch(url, {
      method,
      body: o.body,
      signal: AbortSignal.timeout(o.timeoutMs ?? 30000),
      headers: {
        ...(o.body !== undefined ? { 'Content-Type': o.contentType ?? 'text/plain' } : {}),
        ...(apiToken !== undefined ? { Authorization: `Bearer ${apiToken}` } : {})
      }
    })
    return { status: res.status, text: await res.text() }
  } catch (err: any) {
    const why = err?.cause?.code ?? err?.cause?.message ?? err?.message
    throw new CliError(`cannot reach the countd API at ${api} (${String(why)})`)
  }
}

/** The `error` of a JSON error body, or the raw text (or the status, for an empty body: not a countd API then). */
export function errorOf (reply: ApiReply): string {
  let text = reply.text.trim()
  try {
    text = String(JSON.parse(reply.text).error ?? text)
  } catch {}
  return text === '' ? `the API answered HTTP ${reply.status} with no message (is --api a countd node?)` : text
}

/** Turn a non-2xx reply into a CliError (4xx: the user's input, exit 2). */
export function expectOk (reply: ApiReply): ApiReply {
  if (reply.status >= 200 && reply.status < 300) return reply
  throw new CliError(errorOf(reply), reply.status >= 400 && reply.status < 500 ? 2 : 1)
}

/** A consistent read that could not be: the error with the best guess and who was unreachable. */
export function unreachableError (reply: ApiReply): CliError {
  try {
    const body = JSON.parse(reply.text) as { error: string, bestGuess?: unknown, unreachable?: string[] }
    if (body.bestGuess !== undefined) return new CliError(`${body.error} (best guess ${String(body.bestGuess)}; unreachable: ${(body.unreachable ?? []).join(', ')})`)
  } catch {}
  return new CliError(errorOf(reply))
}

/** Seconds in (0, 300] for --timeout, else exit 2. */
export function checkTimeout (timeout: string | undefined): void {
  if (timeout !== undefined && !(/^[0-9]+(\.[0-9]+)?$/.test(timeout) && Number(timeout) > 0 && Number(timeout) <= 300)) throw new CliError('--timeout must be seconds in (0, 300]', 2)
}
