/** `cdn publish`, `share`, `get`, `ls`, `rm`: contents in and out of the pool. */
import type { Command } from 'commander'
import { createCommandLogger } from '../core/log.ts'
import { loadCa } from '../core/tls-client.ts'
import { parseChunkingMode } from '../manager/publish/chunker.ts'
import { requireWritableDir } from './cli-basics.ts'
import { apiCommand, apiOptions, caOption, durationMs, intArg, managerOption, managerUrls, print, proxyOption, proxyUrl } from './cli-options.ts'
import { get } from './get.ts'
import { formatContents, listContents, removeContent } from './pool-commands.ts'
import { publish } from './publish.ts'
import { share } from './token-commands.ts'

export function addPublishCommands (program: Command): void {
  apiCommand(program.command('publish <file>'))
    .description('upload a file; prints its id, gateway URL and link (publisher or admin token)')
    .addOption(proxyOption())
    .option('--replicas <n>', 'copies per chunk', intArg('--replicas', 1))
    .option('--name <name>', 'name shown to viewers (default: the file name)')
    .option('--type <mediaType>', 'media type (default: from the extension)')
    .option('--ttl <duration>', 'delete the content everywhere this long after it is published, e.g. 30m, 7d')
    .option('--private', 'resolvable only with a capability (cdn share) or a token allowed to read it')
    .option('--chunking <mode>', "cut by content (cdc: an edited file shares most chunks) or at fixed offsets (fixed); default: the manager's --chunking")
    .option('--json', 'print one JSON line')
    .action(async (file: string, o) => {
      const r = await publish(file, { ...await apiOptions(o), replicas: o.replicas, name: o.name, type: o.type, proxy: proxyUrl(o), json: o.json === true, ttlMs: durationMs(o.ttl), private: o.private === true, chunking: o.chunking == null ? undefined : parseChunkingMode(o.chunking, '--chunking') })
      print(o.json === true, r, `id:   ${r.id}\nurl:  ${r.url}\nlink: ${r.link}${r.private ? `\nprivate: viewers need a capability link, from cdn share ${r.id}` : ''}`)
    })

  apiCommand(program.command('share <id>'))
    .description('print a link that opens a content: a capability that expires (owner or admin), or with --key-link the bearer key link')
    .addOption(proxyOption())
    .option('--ttl <duration>', 'how long the capability works, e.g. 1h, 7d (default 24h, at most 365d)')
    .option('--key-link', 'print cdn://<id>?k=<key> instead: works with the manager down, never expires, cannot be revoked')
    .option('--json', 'print one JSON line')
    .action(async (id: string, o) => {
      const r = await share(await apiOptions(o), id, { proxy: proxyUrl(o), ttlMs: durationMs(o.ttl), keyLink: o.keyLink === true })
      print(o.json === true, r, `link:    ${r.link}\nurl:     ${r.url}\nexpires: ${r.expiresAt ?? 'never (a key link gives the content away for good)'}`)
    })
}

export function addReadCommands (program: Command, verbose: () => boolean): void {
  program.command('get <id>')
    .description('download a content (id or cdn:// link) to a file, verifying every chunk')
    .requiredOption('-o, --output <file>', 'where to write')
    .addOption(managerOption())
    .addOption(caOption())
    .option('--json', 'print one JSON line')
    .action(async (id: string, o) => {
      await requireWritableDir(o.output)
      const r = await get(id, { manager: managerUrls(o), ca: await loadCa(o.ca), output: o.output, json: o.json === true, logger: createCommandLogger('get', verbose()) })
      print(o.json === true, r, `${r.file}: ${r.size} bytes (${r.name}, ${r.type}) from ${Object.keys(r.sources).length} sources`)
    })

  apiCommand(program.command('ls'))
    .description('list published contents and their copies (admin, publisher or reader token)')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await listContents(await apiOptions(o))
      print(o.json === true, r, formatContents(r))
    })

  apiCommand(program.command('rm <id>'))
    .description('delete a content from every node and destroy its key (its publisher or an admin)')
    .option('--json', 'print JSON')
    .action(async (id: string, o) => {
      const r = await removeContent(await apiOptions(o), id)
      print(o.json === true, r, `deleted ${id}`)
    })
}
