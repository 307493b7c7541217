import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { decryptMetadata, encryptMetadata } from './chunk-crypto.ts'
import { BadInputError, SignatureError } from './errors.ts'
import { manifestCid, parseBlobId } from './ids.ts'

/** Fixed-size chunks: chunk i starts at i × chunkSize. */
export const MANIFEST_VERSION = 1
/** Chunks of varying size (content-defined): `offsets` says where each starts. */
export const MANIFEST_VERSION_OFFSETS = 2
/** Chunks of a name, each under its own derived key (core/chunk-keys.ts): `keys` holds them, sealed under the content key. */
export const MANIFEST_VERSION_KEYS = 3
export const CIPHER = 'aes-256-gcm/index-nonce'
export const CIPHER_DERIVED = 'aes-256-gcm/derived-keys'
/** Signatures cover this prefix too, so a manifest signature can never be replayed as another message. */
const SIGNING_DOMAIN = new TextEncoder().encode('cdn-manifest-v1\n')
/** 4 GiB of 1 MiB chunks is 4096 ids (~250 KB); this bound admits ~1 TiB and still rejects garbage. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024

/** What a manifest says before it is signed. */
export interface ManifestBody {
  v: number
  size: number
  /** v1: every chunk's size (the last may be short); v2: the largest a chunk may be (readers size buffers by it) */
  chunkSize: number
  chunks: string[]
  /** v2 and v3: the start byte of each chunk, increasing, the first 0 */
  offsets?: number[]
  /** v3 only: base64 of the chunk keys, in chunk order, sealed under the content key */
  keys?: string
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

/**
 * Fixed key order makes the encoding canonical, so the bytes (and the content
 * id) are reproducible. A v1 body has no `offsets` key at all: its bytes are
 * those of every manifest signed before v2 existed.
 */
function bodyBytes (b: ManifestBody): Uint8Array {
  const ordered: ManifestBody = {
    v: b.v,
    size: b.size,
    chunkSize: b.chunkSize,
    chunks: b.chunks,
    ...(b.v !== MANIFEST_VERSION ? { offsets: b.offsets } : {}),
    ...(b.v === MANIFEST_VERSION_KEYS ? { keys: b.keys } : {}),
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

/** True when `offsets` are exactly where fixed-size chunks of `chunkSize` would start: then v1 says it all. */
function fixedLayout (offsets: readonly number[], chunkSize: number): boolean {
  return offsets.every((o, i) => o === i * chunkSize)
}

/** The version and cipher a body's fields call for. */
function versionOf (body: Omit<ManifestBody, 'signer' | 'v' | 'cipher'>): Pick<ManifestBody, 'v' | 'cipher'> {
  if (body.keys != null) return { v: MANIFEST_VERSION_KEYS, cipher: CIPHER_DERIVED }
  const variable = body.offsets != null && !fixedLayout(body.offsets, body.chunkSize)
  return { v: variable ? MANIFEST_VERSION_OFFSETS : MANIFEST_VERSION, cipher: CIPHER }
}

/**
 * Signs a manifest. Given `keys`, it is a v3 manifest (with `offsets`, which
 * it then needs). Given `offsets` alone, it is a v2 manifest unless the chunks
 * happen to be laid out as fixed-size ones, which stay v1: same bytes, same
 * content id as ever.
 */
export async function signManifest (body: Omit<ManifestBody, 'signer' | 'v' | 'cipher'>, key: PrivateKey, signer: string): Promise<SignedManifest> {
  const { offsets, keys, ...rest } = body
  const { v, cipher } = versionOf(body)
  const full: ManifestBody = { v, cipher, ...rest, ...(v !== MANIFEST_VERSION ? { offsets } : {}), ...(keys != null ? { keys } : {}), signer }
  checkLayout(full)
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
  field(m.v === MANIFEST_VERSION || m.v === MANIFEST_VERSION_OFFSETS || m.v === MANIFEST_VERSION_KEYS, 'v', 0)
  field(Number.isSafeInteger(m.size) && m.size >= 0, 'size', 0)
  field(Number.isSafeInteger(m.chunkSize) && m.chunkSize > 0, 'chunkSize', 0)
  field(Array.isArray(m.chunks), 'chunks', 0)
  checkLayout(m)
  for (const c of m.chunks) parseBlobId(c)
  for (const k of ['createdAt', 'publisher', 'cipher', 'meta', 'signer', 'sig']) field(typeof m[k] === 'string', k, 0)
  field(m.cipher === (m.v === MANIFEST_VERSION_KEYS ? CIPHER_DERIVED : CIPHER), 'cipher', 0)
  field(m.v === MANIFEST_VERSION_KEYS ? typeof m.keys === 'string' : m.keys === undefined, 'keys', 0)
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

/**
 * Checks that the chunks tile the content: v1, ⌈size / chunkSize⌉ of them;
 * v2 and v3, one offset per chunk, from 0, increasing, within `size`, no chunk
 * longer than `chunkSize`.
 */
function checkLayout (m: Pick<ManifestBody, 'v' | 'size' | 'chunkSize' | 'chunks' | 'offsets'>): void {
  if (m.v === MANIFEST_VERSION) {
    field(m.offsets === undefined, 'offsets', 0)
    field(m.chunks.length === Math.ceil(m.size / m.chunkSize), 'chunks', 0)
    return
  }
  const offsets: unknown = m.offsets
  field(Array.isArray(offsets) && offsets.length === m.chunks.length, 'offsets', 0)
  const starts = offsets as unknown[]
  let previous = -1
  for (let i = 0; i < starts.length; i++) {
    const o = starts[i]
    const ok = typeof o === 'number' && Number.isSafeInteger(o) && (i === 0 ? o === 0 : o > previous) && o < m.size && o - Math.max(0, previous) <= m.chunkSize
    field(ok, 'offsets', 0)
    previous = o as number
  }
  field(m.size - Math.max(0, previous) <= m.chunkSize && (starts.length > 0 || m.size === 0), 'offsets', 0)
}

/** What locating a chunk needs from a manifest, whatever its version. */
export type ChunkLayout = Pick<Manifest, 'size' | 'chunkSize'> & { offsets?: readonly number[] }

function chunkCount (m: ChunkLayout): number {
  return m.offsets != null ? m.offsets.length : Math.ceil(m.size / m.chunkSize)
}

/** First byte of chunk `index`; `index` = the chunk count gives `size` (the end of the last chunk). */
export function chunkStart (m: ChunkLayout, index: number): number {
  const count = chunkCount(m)
  if (!Number.isSafeInteger(index) || index < 0 || index > count) throw new BadInputError(`chunk ${index} is outside 0..${count}`)
  if (index === count) return m.size
  return m.offsets != null ? m.offsets[index] : index * m.chunkSize
}

/** Byte length of chunk `index` (in v1, the last one may be short). */
export function chunkLength (m: ChunkLayout, index: number): number {
  return chunkStart(m, index + 1) - chunkStart(m, index)
}

/** The chunk holding byte `byte` of the content (a binary search over v2's offsets). */
export function chunkAt (m: ChunkLayout, byte: number): number {
  if (!Number.isSafeInteger(byte) || byte < 0 || byte >= m.size) throw new BadInputError(`byte ${byte} is outside a content of ${m.size} bytes`)
  const offsets = m.offsets
  if (offsets == null) return Math.floor(byte / m.chunkSize)
  // The last chunk whose start is at or before the byte.
  let lo = 0
  let hi = offsets.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (offsets[mid] <= byte) lo = mid
    else hi = mid - 1
  }
  return lo
}
