import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { decryptMetadata, encryptMetadata } from './chunk-crypto.ts'
import { BadInputError, SignatureError } from './errors.ts'
import { manifestCid, parseBlobId } from './ids.ts'

export const MANIFEST_VERSION = 1
export const CIPHER = 'aes-256-gcm/index-nonce'
/** Signatures cover this prefix too, so a manifest signature can never be replayed as another message. */
const SIGNING_DOMAIN = new TextEncoder().encode('cdn-manifest-v1\n')
/** 4 GiB of 1 MiB chunks is 4096 ids (~250 KB); this bound admits ~1 TiB and still rejects garbage. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024

/** What a manifest says before it is signed. */
export interface ManifestBody {
  v: number
  size: number
  chunkSize: number
  chunks: string[]
  createdAt: string
  publisher: string
  cipher: string
  /** base64 of the name and media type, sealed under the content key. */
  meta: string
  /** The manager's peer id; its Ed25519 key signs the manifest. */
  signer: string
}

export interface Manifest extends ManifestBody {
  sig: string
}

export interface ContentMetadata {
  name: string
  type: string
}

export interface SignedManifest {
  manifest: Manifest
  bytes: Uint8Array
  id: CID
}

/** Fixed key order makes the encoding canonical, so the bytes (and the content id) are reproducible. */
function bodyBytes (b: ManifestBody): Uint8Array {
  const ordered: ManifestBody = {
    v: b.v,
    size: b.size,
    chunkSize: b.chunkSize,
    chunks: b.chunks,
    createdAt: b.createdAt,
    publisher: b.publisher,
    cipher: b.cipher,
    meta: b.meta,
    signer: b.signer
  }
  const json = new TextEncoder().encode(JSON.stringify(ordered))
  const out = new Uint8Array(SIGNING_DOMAIN.length + json.length)
  out.set(SIGNING_DOMAIN)
  out.set(json, SIGNING_DOMAIN.length)
  return out
}

export function sealMetadata (key: Uint8Array, meta: ContentMetadata): string {
  const plain = new TextEncoder().encode(JSON.stringify({ name: meta.name, type: meta.type }))
  return Buffer.from(encryptMetadata(key, plain)).toString('base64')
}

export function openMetadata (key: Uint8Array, manifest: Manifest): ContentMetadata {
  const plain = decryptMetadata(key, Buffer.from(manifest.meta, 'base64'))
  const parsed = JSON.parse(new TextDecoder().decode(plain)) as Partial<ContentMetadata>
  return { name: String(parsed.name ?? ''), type: String(parsed.type ?? 'application/octet-stream') }
}

export async function signManifest (body: Omit<ManifestBody, 'signer' | 'v' | 'cipher'>, key: PrivateKey, signer: string): Promise<SignedManifest> {
  const full: ManifestBody = { v: MANIFEST_VERSION, cipher: CIPHER, ...body, signer }
  const sig = await key.sign(bodyBytes(full))
  const manifest: Manifest = { ...full, sig: Buffer.from(sig).toString('base64') }
  const bytes = new TextEncoder().encode(JSON.stringify(manifest))
  return { manifest, bytes, id: manifestCid(bytes) }
}

function field<T> (ok: boolean, name: string, value: T): T {
  if (!ok) throw new BadInputError(`invalid manifest: bad field "${name}"`)
  return value
}

/** Parses untrusted manifest bytes and checks their shape; the signature is checked by verifyManifest. */
export function decodeManifest (bytes: Uint8Array): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new BadInputError('invalid manifest: too large')
  let m: any
  try {
    m = JSON.parse(new TextDecoder().decode(bytes))
  } catch (err) {
    throw new BadInputError('invalid manifest: not JSON', { cause: err })
  }
  if (m == null || typeof m !== 'object') throw new BadInputError('invalid manifest: not an object')
  field(m.v === MANIFEST_VERSION, 'v', 0)
  field(Number.isSafeInteger(m.size) && m.size >= 0, 'size', 0)
  field(Number.isSafeInteger(m.chunkSize) && m.chunkSize > 0, 'chunkSize', 0)
  field(Array.isArray(m.chunks) && m.chunks.length === Math.ceil(m.size / m.chunkSize), 'chunks', 0)
  for (const c of m.chunks) parseBlobId(c)
  for (const k of ['createdAt', 'publisher', 'cipher', 'meta', 'signer', 'sig']) field(typeof m[k] === 'string', k, 0)
  field(m.cipher === CIPHER, 'cipher', 0)
  return m as Manifest
}

/**
 * Checks the manifest's signature and, when `trusted` is given, that the signer
 * is one of those peer ids (a proxy trusts its manager, not any signer).
 */
export async function verifyManifest (m: Manifest, trusted?: string[]): Promise<void> {
  if (trusted != null && !trusted.includes(m.signer)) {
    throw new SignatureError(`manifest signed by ${m.signer}, which is not a trusted manager`)
  }
  let ok = false
  try {
    const pub = peerIdFromString(m.signer).publicKey
    if (pub == null) throw new SignatureError('manifest signer has no inline public key')
    ok = await pub.verify(bodyBytes(m), Buffer.from(m.sig, 'base64'))
  } catch (err) {
    if (err instanceof SignatureError) throw err
    throw new SignatureError('manifest signature could not be checked', { cause: err })
  }
  if (!ok) throw new SignatureError()
}

/** Byte length of chunk `index` (the last one may be short). */
export function chunkLength (m: Pick<Manifest, 'size' | 'chunkSize'>, index: number): number {
  return Math.min(m.chunkSize, m.size - index * m.chunkSize)
}
