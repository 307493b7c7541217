import { CdnError } from '../../core/errors.ts'

/** The database was migrated by a newer manager: this one would misread it, so it refuses to start. */
export class SchemaTooNewError extends CdnError {
  constructor (found: number, known: number) {
    super(`the catalog's schema is version ${found}, newer than this manager knows (${known}): upgrade the manager`, 'ERR_SCHEMA_TOO_NEW', 500)
  }
}

/** `cdn manager migrate` refused: the source is in use or the target is not empty. */
export class MigrateRefusedError extends CdnError {
  constructor (message: string) { super(message, 'ERR_MIGRATE_REFUSED', 409) }
}

/** The PostgreSQL catalog cannot be reached or refused the connection (the message never holds the connection string). */
export class CatalogUnavailableError extends CdnError {
  constructor (message: string, options?: ErrorOptions) { super(message, 'ERR_CATALOG_UNAVAILABLE', 503, options) }
}

/** A manager was given a pool key other than the one this catalog's pool signs with. */
export class PoolKeyMismatchError extends CdnError {
  constructor (catalogPool: string, given: string) {
    super(`this catalog belongs to the pool ${catalogPool}, but this manager's pool key is ${given}: give it the pool's key (a copy of the first manager's pool.key) with --pool-key-file`, 'ERR_POOL_KEY', 500)
  }
}
