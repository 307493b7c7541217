/**
 * Opens the manager's database and the stores built on it: the catalog,
 * the tokens and the content keys. The daemon holds what this returns and
 * never the engine itself.
 */
import { Catalog, type CatalogInit } from './catalog.ts'
import { KeyCustody } from './key-custody.ts'
import { Db } from './sqlite.ts'
import { TokenStore } from './tokens.ts'

export interface OpenCatalog {
  catalog: Catalog
  tokens: TokenStore
  keys: KeyCustody
  close: () => void
}

export function openCatalog (path: string, init: CatalogInit = {}): OpenCatalog {
  const db = new Db(path)
  try {
    return { catalog: new Catalog(db, init), tokens: new TokenStore(db), keys: new KeyCustody(db), close: () => { db.close() } }
  } catch (err) {
    db.close()
    throw err
  }
}
