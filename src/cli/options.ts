import { Option, type Command } from 'commander'

/** Where client commands find the API: `--api URL` and `--api-token`. */
export interface ApiTarget { api: string, apiToken?: string }

/** Add `--api` and `--api-token` (with their env variables) to a client command. */
export function withApiOptions (cmd: Command): Command {
  return cmd
    .addOption(new Option('--api <url>', 'URL of a countd HTTP API').env('COUNTD_API').default('http://127.0.0.1:7777'))
    .addOption(new Option('--api-token <token>', 'bearer token, if the API requires one').env('COUNTD_API_TOKEN'))
}
