import { Option } from 'commander'

/** `--api URL`, shared by every client command. */
export const apiOption = (): Option =>
  new Option('--api <url>', 'URL of a countd HTTP API').env('COUNTD_API').default('http://127.0.0.1:7777')
