import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as json from 'multiformats/codecs/json'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { BadInputError, HashMismatchError } from './errors.ts'

/** Chunks are raw bytes; manifests are JSON, so a content id is told apart from a chunk id by its codec. */
export const RAW_CODEC = raw.code
export const MANIFEST_CODEC = json.code

/** Node's hash is synchronous and faster than WebCrypto for the 1 MiB blobs on the hot path. */
export function sha256Bytes (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

function cidFor (codec: number, bytes: Uint8Array): CID {
  return CID.createV1(codec, createDigest(sha256.code, sha256Bytes(bytes)))
}

/** CIDv1, codec raw, sha2-256 of an encrypted chunk blob. */
export function chunkCid (blob: Uint8Array): CID {
  return cidFor(RAW_CODEC, blob)
}

/** CIDv1, codec json, sha2-256 of an encoded manifest: the content id. */
export function manifestCid (encoded: Uint8Array): CID {
  return cidFor(MANIFEST_CODEC, encoded)
}

/**
 * Parses a blob id from untrusted input (URLs, JSON bodies). Only the two kinds
 * we mint are accepted: CIDv1, sha2-256, codec raw or json.
 */
export function parseBlobId (text: unknown): CID {
  if (typeof text !== 'string' || text.length === 0 || text.length > 128) {
    throw new BadInputError('invalid id: expected a CIDv1 string')
  }
  let cid: CID
  try {
    cid = CID.parse(text)
  } catch (err) {
    throw new BadInputError(`invalid id "${text.slice(0, 80)}": not a CID`, { cause: err })
  }
  if (cid.version !== 1 || cid.multihash.code !== sha256.code || cid.multihash.digest.length !== 32) {
    throw new BadInputError(`invalid id "${text}": expected CIDv1 with sha2-256`)
  }
  if (cid.code !== RAW_CODEC && cid.code !== MANIFEST_CODEC) {
    throw new BadInputError(`invalid id "${text}": unsupported codec`)
  }
  return cid
}

/** Parses a content id: a blob id with the manifest codec. */
export function parseContentId (text: unknown): CID {
  const cid = parseBlobId(text)
  if (cid.code !== MANIFEST_CODEC) throw new BadInputError(`"${String(text)}" is a chunk id, not a content id`)
  return cid
}

/** True when `bytes` hash to the digest inside `cid`. Every receiver checks this before using a byte. */
export function matchesCid (cid: CID, bytes: Uint8Array): boolean {
  const digest = sha256Bytes(bytes)
  const want = cid.multihash.digest
  if (digest.length !== want.length) return false
  for (let i = 0; i < digest.length; i++) if (digest[i] !== want[i]) return false
  return true
}

export function assertMatchesCid (cid: CID, bytes: Uint8Array): void {
  if (!matchesCid(cid, bytes)) throw new HashMismatchError(`blob does not match ${cid.toString()}`)
}

/** The 256-bit Kademlia key of a CID, the way kad-dht derives it (sha256 of the multihash). */
export function kadKeyOfCid (cid: CID): Uint8Array {
  return sha256Bytes(cid.multihash.bytes)
}
