// JSON with BigInt written as plain number literals: exact in any parser
// that keeps big integers (Python, jq, Go's json.Number), never a string.
const MARK = '\u0000big:'
/** How MARK looks once JSON.stringify has escaped it. */
const ESCAPED_MARK = '\\u0000big:'

export function toJson (value: unknown): string {
  const text = JSON.stringify(value, (_k, v) => typeof v === 'bigint' ? `${MARK}${v.toString()}` : v)
  return text.includes(ESCAPED_MARK) ? text.replace(/"\\u0000big:(\d+)"/g, '$1') : text
}
