/**
 * Opens the manager's database and the stores built on it: the catalog,
 * the tokens and the content keys. The daemon holds what this returns and
 * never the engine itself.
 */
import { Catalog, type CatalogInit } from './catalog.ts'
import { ContentLifecycle } from './content-lifecycle.ts'
import { KeyCustody } from './key-custody.ts'
import { Db } from './sqlite.ts'
import { TokenStore } from './tokens.ts'

export interface OpenCatalog {
  catalog: Catalog
  tokens: TokenStore
  keys: KeyCustody
  /** going visible and being deleted, each with its key and event in one transaction */
  lifecycle: ContentLifecycle
  close: () => void
}

export function openCatalog (path: string, init: CatalogInit = {}): OpenCatalog {
  const db = new Db(path)
  try {
    const catalog = new Catalog(db, init)
    const keys = new KeyCustody(db)
    return { catalog, tokens: new TokenStore(db, e => { catalog.recordEvent(e) }), keys, lifecycle: new ContentLifecycle(catalog, keys), close: () => { db.close() } }
  } catch (err) {
    db.close()
    throw err
  }
}
