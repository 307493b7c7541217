/**
 * The pool identity: the Ed25519 key every manager of a pool signs with
 * (manifests, capabilities, node lists, manager lists), so a proxy or node
 * verifies what it gets whichever manager answered. Managers share it from a
 * file (`pool.key`, like the master key); each keeps its own libp2p identity.
 *
 * The catalog records the pool's peer id on the first start and refuses a
 * manager holding another key. A pool made before pool keys signed with its
 * one manager's key: that key becomes the pool key, so what it signed and
 * what proxies remember stay valid.
 */
import { readFile } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CdnError } from '../../core/errors.ts'
import { writeSecretFile } from '../../core/secret-file.ts'
import type { PoolMeta } from '../catalog/pool-meta.ts'

/** The pool key's file name in a manager's data directory. */
export const POOL_KEY_FILE = 'pool.key'

export class PoolKeyError extends CdnError {
  constructor (message: string, options?: ErrorOptions) { super(message, 'ERR_POOL_KEY', 500, options) }
}

export interface PoolIdentity {
  privateKey: PrivateKey
  /** the pool id: the peer id of the pool key */
  peerId: string
}

export interface OpenedPoolIdentity extends PoolIdentity {
  /** how the key came to be: read from its file, made for a new pool, or taken over from an older pool's manager key */
  origin: 'file' | 'created' | 'adopted'
}

export interface PoolIdentityInit {
  file: string
  /** make the file when missing (the default location); a file named by the operator must exist */
  create: boolean
  /** this manager's own libp2p key, the pool key of a pool from before pool keys */
  managerKey: PrivateKey
  meta: Pick<PoolMeta, 'poolId' | 'claimPool' | 'hasContents'>
}

const identityOf = (privateKey: PrivateKey): PoolIdentity => ({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() })

export async function openPoolIdentity (init: PoolIdentityInit): Promise<OpenedPoolIdentity> {
  const stored = await readKey(init.file)
  if (stored != null) {
    const id = identityOf(stored)
    await init.meta.claimPool(id.peerId)
    return { ...id, origin: 'file' }
  }
  if (!init.create) throw new PoolKeyError(`no pool key file at ${init.file}`)
  const own = identityOf(init.managerKey)
  const recorded = await init.meta.poolId()
  // An older pool (contents, no pool recorded) keeps signing with its manager's key.
  const adopt = recorded === own.peerId || (recorded == null && await init.meta.hasContents())
  const id = adopt ? own : identityOf(await generateKeyPair('Ed25519'))
  // Claimed before the file is written: a manager given the wrong pool leaves no stray key behind.
  await init.meta.claimPool(id.peerId)
  await writeSecretFile(init.file, privateKeyToProtobuf(id.privateKey))
  return { ...id, origin: adopt ? 'adopted' : 'created' }
}

async function readKey (file: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err: any) {
    if (err?.code === 'ENOENT') return undefined
    throw new PoolKeyError(`cannot read the pool key file ${file}: ${String(err?.message ?? err)}`, { cause: err })
  }
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new PoolKeyError(`the pool key file ${file} does not hold a key`, { cause: err })
  }
}
