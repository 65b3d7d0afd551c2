// The CLI's HTTP client for a running countd.
import { CliError } from './errors.js'
import type { ApiTarget } from './options.js'

export interface ApiReply { status: number, text: string }

export async function callApi ({ api, apiToken }: ApiTarget, method: string, path: string, body?: string, timeoutMs = 30000): Promise<ApiReply> {
  let url: URL
  try {
    url = new URL(path, api.endsWith('/') ? api : `${api}/`)
  } catch {
    throw new CliError(`--api must be a URL like http://127.0.0.1:7777, got "${api}"`, 2)
  }
  try {
    const res = await fetch(url, { method, body, signal: AbortSignal.timeout(timeoutMs), headers: {
      ...(body !== undefined ? { 'Content-Type': 'text/plain' } : {}),
      ...(apiToken !== undefined ? { Authorization: `Bearer ${apiToken}` } : {})
    } })
    return { status: res.status, text: await res.text() }
  } catch (err: any) {
    const why = err?.cause?.code ?? err?.cause?.message ?? err?.message
    throw new CliError(`cannot reach the countd API at ${api} (${String(why)})`)
  }
}

/** The `error` of a JSON error body, or the raw text. */
export function errorOf (reply: ApiReply): string {
  try {
    return JSON.parse(reply.text).error ?? reply.text
  } catch {
    return reply.text
  }
}

/** Turn a non-2xx reply into a CliError (4xx: the user's input, exit 2). */
export function expectOk (reply: ApiReply): ApiReply {
  if (reply.status >= 200 && reply.status < 300) return reply
  throw new CliError(errorOf(reply), reply.status >= 400 && reply.status < 500 ? 2 : 1)
}
