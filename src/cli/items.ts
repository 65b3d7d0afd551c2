// countd items add TENANT [ID...] / countd items count TENANT (SPEC §5).
import { Command, Option } from 'commander'
import { createInterface } from 'node:readline'
import { callApi, expectOk, unreachableError, checkTimeout } from './client.js'
import { withApiOptions, type ApiTarget } from './options.js'
import { CliError, exitWith } from './errors.js'
import { isValidItemId, isValidTenant } from '../validate.js'

/** Items per POST /items (the server's limit). */
const BATCH_ITEMS = 10000
/** Stay below the server's 4 MiB body limit whatever the ids look like. */
const BATCH_BYTES = 3.5 * 1024 * 1024
const TENANT_RULE = 'tenant must be 1-200 characters of A-Z a-z 0-9 . _ ~ -'

export function itemsCommand (): Command {
  const items = new Command('items').description('distinct items per tenant: add them, count them')
  items.addCommand(withApiOptions(new Command('add')
    .description('add items to a tenant: the ids given, else one id a line from stdin; prints the totals')
    .argument('<tenant>', 'tenant')
    .argument('[ids...]', 'item ids (default: read from stdin, one a line)'))
    .action(async (tenant: string, ids: string[], o: ApiTarget) => {
      try {
        if (!isValidTenant(tenant)) throw new CliError(TENANT_RULE, 2)
        const totals = await addItems(o, tenant, ids.length > 0 ? ids : stdinLines())
        process.stdout.write(`accepted ${totals.accepted}, added ${totals.added}\n`)
      } catch (err) {
        exitWith(err)
      }
    }))
  items.addCommand(withApiOptions(new Command('count')
    .description("print a tenant's distinct item count (this node's view, or --consistent)")
    .argument('<tenant>', 'tenant')
    .option('--consistent', 'read every member first (fails if one cannot be reached)')
    .addOption(new Option('--timeout <sec>', 'timeout of a consistent read').env('COUNTD_CONSISTENT_TIMEOUT')))
    .action(async (tenant: string, o: { consistent?: boolean, timeout?: string } & ApiTarget) => {
      try {
        if (!isValidTenant(tenant)) throw new CliError(TENANT_RULE, 2)
        checkTimeout(o.timeout)
        const query = new URLSearchParams()
        if (o.consistent === true) query.set('consistent', 'true')
        if (o.timeout !== undefined) query.set('timeout', o.timeout)
        const q = query.toString()
        const reply = await callApi(o, 'GET', `items/${tenant}/count${q !== '' ? `?${q}` : ''}`, { timeoutMs: (Number(o.timeout ?? 5) + 30) * 1000 })
        if (reply.status === 503) throw unreachableError(reply)
        process.stdout.write(`${String((JSON.parse(expectOk(reply).text) as { count: number }).count)}\n`)
      } catch (err) {
        exitWith(err)
      }
    }))
  return items
}

async function * stdinLines (): AsyncGenerator<string> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) yield line
}

/** Send the ids in batches (<= 10,000 items, < 3.5 MiB); a bad id stops before its batch is sent. */
async function addItems (o: ApiTarget, tenant: string, ids: Iterable<string> | AsyncIterable<string>): Promise<{ accepted: number, added: number }> {
  const totals = { accepted: 0, added: 0 }
  const progress = process.stderr.isTTY
  let batch: string[] = []
  let bytes = 2
  let line = 0
  const send = async (): Promise<void> => {
    if (batch.length === 0) return
    const body = `[${batch.join(',')}]`
    const reply = await callApi(o, 'POST', 'items', { body, contentType: 'application/json', timeoutMs: 120000 })
    if (reply.status < 200 || reply.status >= 300) {
      const already = totals.accepted > 0 ? ` (${totals.accepted} items before this batch were accepted, ${totals.added} added)` : ''
      throw new CliError(`${expectOkMessage(reply)}${already}`, reply.status >= 400 && reply.status < 500 ? 2 : 1)
    }
    const r = JSON.parse(reply.text) as { accepted: number, added: number }
    totals.accepted += r.accepted
    totals.added += r.added
    if (progress) process.stderr.write(`\raccepted ${totals.accepted}, added ${totals.added} ...`)
    batch = []
    bytes = 2
  }
  for await (const id of ids) {
    line++
    if (id === '' && !Array.isArray(ids)) continue
    if (!isValidItemId(id)) throw new CliError(`item ${line}: id must be 1-256 bytes of UTF-8 without control characters`, 2)
    const item = JSON.stringify({ id, tenant })
    if (batch.length === BATCH_ITEMS || bytes + item.length + 1 > BATCH_BYTES) await send()
    batch.push(item)
    bytes += item.length + 1
  }
  await send()
  if (progress && totals.accepted > 0) process.stderr.write('\n')
  if (totals.accepted === 0) throw new CliError('no item ids given (as arguments or on stdin, one a line)', 2)
  return totals
}

function expectOkMessage (reply: { status: number, text: string }): string {
  try {
    expectOk(reply)
  } catch (err: any) {
    return err.message
  }
  return ''
}
