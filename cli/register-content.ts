/** `cdn publish`, `share`, `get`, `ls`, `rm`: contents in and out of the pool. */
import type { Command } from 'commander'
import { createCommandLogger } from '../core/log.ts'
import { loadCa } from '../core/tls-client.ts'
import { parseChunkingMode } from '../core/chunker.ts'
import { requireWritableDir } from './cli-basics.ts'
import { apiCommand, apiOptions, durationMs, intArg, managerUrls, print, proxyOption, proxyUrl } from './cli-options.ts'
import { get } from './get.ts'
import { formatVersions, versions } from './names.ts'
import { BadInputError } from '../core/errors.ts'
import { parseName } from '../core/names.ts'
import { formatBytes } from '../core/units.ts'
import { formatContents, listContents, removeContent } from './pool-commands.ts'
import { publish } from './publish.ts'
import { share } from './token-commands.ts'

export function addPublishCommands (program: Command): void {
  apiCommand(program.command('publish <file>'))
    .description('upload a file; prints its id, gateway URL and link (publisher or admin token)')
    .addOption(proxyOption())
    .option('--replicas <n>', 'copies per chunk', intArg('--replicas', 1))
    .option('--name <name>', 'publish as the next generation of this stable name (e.g. films/launch.mp4; the first publisher owns it), also shown to viewers; only the chunks the pool lacks are sent, and running it again after an interruption resumes (default: no name, the file name shown)')
    .option('--keep <n>', 'with --name: keep only the newest N generations, deleting older ones from the pool', intArg('--keep', 1))
    .option('--type <mediaType>', 'media type (default: from the extension)')
    .option('--ttl <duration>', 'delete the content everywhere this long after it is published, e.g. 30m, 7d')
    .option('--private', 'resolvable only with a capability (cdn share) or a token allowed to read it')
    .option('--chunking <mode>', "cut by content (cdc: an edited file shares most chunks) or at fixed offsets (fixed); default: the manager's --chunking, or with --name cdc, cut on this machine")
    .option('--json', 'print one JSON line')
    .action(async (file: string, o) => {
      if (o.keep != null && o.name == null) throw new BadInputError('--keep needs --name')
      const publishName = o.name == null ? undefined : parseName(o.name)
      const r = await publish(file, { ...await apiOptions(o), replicas: o.replicas, name: o.name, type: o.type, proxy: proxyUrl(o), json: o.json === true, ttlMs: durationMs(o.ttl), private: o.private === true, publishName, keep: o.keep, chunking: o.chunking == null ? undefined : parseChunkingMode(o.chunking, '--chunking') })
      const named = r.seq == null ? '' : `\nname: ${r.name} (generation ${r.seq}), ${new URL(`/n/${r.name}`, proxyUrl(o)).toString()}`
      const sent = r.uploadedBytes == null ? '' : `\nsent: ${formatBytes(r.uploadedBytes)} of ${formatBytes(r.size)} (${r.reusedChunks ?? 0} of ${r.chunks} chunks already in the pool)`
      print(o.json === true, r, `id:   ${r.id}\nurl:  ${r.url}\nlink: ${r.link}${named}${sent}${r.private ? `\nprivate: viewers need a capability link, from cdn share ${r.id}` : ''}`)
    })

  apiCommand(program.command('share <id-or-name>'))
    .description('print a link that opens a content, or every generation of a name: a capability that expires (owner or admin), or for a content with --key-link the bearer key link')
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
  apiCommand(program.command('get <id>'))
    .description('download a content (id, cdn:// link, or a name: its newest generation) to a file, verifying every chunk')
    .requiredOption('-o, --output <file>', 'where to write')
    .option('--at <generation>', 'for a name: that generation, by number or ISO time (lists generations: admin, reader or owner token)')
    .option('--json', 'print one JSON line')
    .action(async (id: string, o) => {
      await requireWritableDir(o.output)
      const api = o.at == null ? undefined : await apiOptions(o)
      const r = await get(id, { manager: managerUrls(o), ca: await loadCa(o.ca), output: o.output, json: o.json === true, at: o.at, api, logger: createCommandLogger('get', verbose()) })
      print(o.json === true, r, `${r.file}: ${r.size} bytes (${r.name}, ${r.type}) from ${Object.keys(r.sources).length} sources`)
    })

  apiCommand(program.command('versions <name>'))
    .description('list the generations of a name: number, time, size, bytes each added (its owner, an admin or a reader)')
    .option('--json', 'print JSON')
    .action(async (name: string, o) => {
      const r = await versions(await apiOptions(o), parseName(name))
      print(o.json === true, r, formatVersions(r))
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
