/**
 * The JSON of `POST /api/names/<name>/uploads` (docs/PROTOCOLS.md, "Upload
 * sessions"): a publisher's plan of chunks and what the publish asks for,
 * checked field by field so bad input gets a clear 400 and nothing is claimed.
 */
import { HASH_BYTES } from '../../core/chunk-keys.ts'
import { BadInputError } from '../../core/errors.ts'
import type { PlanRequest } from '../publish/session-publisher.ts'
import { MAX_KEEP } from './name-service.ts'
import { MAX_NAME_CHARS, MAX_TTL_SECONDS, MAX_TYPE_CHARS, MEDIA_TYPE } from './wire.ts'

export interface PlanLimits {
  maxChunkBytes: number
  maxChunks: number
  maxReplicas: number
}

const HEX_HASH = new RegExp(`^[0-9a-f]{${HASH_BYTES * 2}}$`)

function optionalInt (v: unknown, what: string, min: number, max: number): number | undefined {
  if (v == null) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new BadInputError(`${what} must be an integer from ${min} to ${max}`)
  return v
}

function printable (v: unknown, what: string, max: number): string {
  // It ends up in terminals and dashboards: no control characters.
  if (typeof v !== 'string' || v.length === 0 || v.length > max || /[\u0000-\u001f\u007f]/.test(v)) { // eslint-disable-line no-control-regex
    throw new BadInputError(`${what} must be 1 to ${max} printable characters`)
  }
  return v
}

function chunkList (v: unknown, limits: PlanLimits): { hashes: Uint8Array[], sizes: number[] } {
  if (!Array.isArray(v)) throw new BadInputError('chunks must be an array of { hash, size }')
  if (v.length > limits.maxChunks) throw new BadInputError(`an upload has at most ${limits.maxChunks} chunks, not ${v.length}`)
  const hashes: Uint8Array[] = []
  const sizes: number[] = []
  v.forEach((c: any, i) => {
    if (typeof c?.hash !== 'string' || !HEX_HASH.test(c.hash)) throw new BadInputError(`chunks[${i}].hash must be ${HASH_BYTES * 2} lowercase hex characters (sha-256 of the chunk)`)
    const size = optionalInt(c.size, `chunks[${i}].size`, 1, limits.maxChunkBytes)
    if (size == null) throw new BadInputError(`chunks[${i}].size is missing`)
    hashes.push(Buffer.from(c.hash, 'hex'))
    sizes.push(size)
  })
  return { hashes, sizes }
}

export function parsePlanRequest (body: unknown, limits: PlanLimits): PlanRequest {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadInputError('the body must be a JSON object')
  const b = body as Record<string, unknown>
  const type = printable(b.type, 'type', MAX_TYPE_CHARS)
  if (!MEDIA_TYPE.test(type)) throw new BadInputError(`type "${type.slice(0, 80)}" is not a media type`)
  if (b.private != null && typeof b.private !== 'boolean') throw new BadInputError('private must be true or false')
  return {
    ...chunkList(b.chunks, limits),
    file: printable(b.file, 'file', MAX_NAME_CHARS),
    type,
    replicas: optionalInt(b.replicas, 'replicas', 1, limits.maxReplicas),
    private: b.private === true,
    keep: optionalInt(b.keep, 'keep', 1, MAX_KEEP),
    ttlSeconds: optionalInt(b.ttlSeconds, 'ttlSeconds', 1, MAX_TTL_SECONDS)
  }
}
