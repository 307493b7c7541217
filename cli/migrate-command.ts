/** `cdn manager migrate`: moves a stopped single-manager pool's SQLite catalog into an empty PostgreSQL database. */
import type { Command } from 'commander'
import { BadInputError } from '../core/errors.ts'
import { DATABASE_URL_ENV, databaseUrl } from './database-url.ts'
import { print } from './cli-options.ts'

export function addMigrateCommand (manager: Command): void {
  manager.command('migrate')
    .description('copy a stopped manager\'s SQLite catalog (contents, chunks, copies, nodes, tokens, keys, tombstones, pending deletes, events) into an empty PostgreSQL database')
    .requiredOption('--from <file>', 'the SQLite catalog: catalog.db in the manager\'s data directory (refused while a manager has it open)')
    .option('--to-url-file <file>', `file holding the target's postgres:// connection string (default: $${DATABASE_URL_ENV}); the database must be empty`)
    .option('--json', 'print { tables: { name: rows } }')
    .action(async (o) => {
      const url = await databaseUrl(o.toUrlFile)
      if (url == null) throw new BadInputError(`no target: give --to-url-file FILE or set ${DATABASE_URL_ENV}`)
      const { copyCatalogToPostgres } = await import('../manager/catalog/copy-to-postgres.ts')
      const report = await copyCatalogToPostgres(o.from, url, line => { process.stderr.write(`${line}\n`) })
      const rows = Object.values(report.tables).reduce((s, n) => s + n, 0)
      print(o.json === true, report, `migrated ${rows} rows from ${o.from}; start the manager with the same connection string (--database-url-file or ${DATABASE_URL_ENV})`)
    })
}
