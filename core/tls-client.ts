/**
 * Clients of a manager served over HTTPS with a certificate from a private CA
 * (`--ca FILE`, or the file named by `CDN_CA`): undici dispatchers that trust
 * that CA for their connections. The CLI uses it for every manager call; the
 * proxy can build its manager Pool from `tlsConnect(ca)` the same way.
 */
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Agent } from 'undici'
import { BadInputError } from './errors.ts'

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** Reads a PEM file of one or more CA certificates; anything else is a one-line BadInputError. */
export async function readCaFile (path: string): Promise<Buffer> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new BadInputError(`cannot read the CA file ${path}: ${err?.code === 'ENOENT' ? 'no such file' : String(err?.message ?? err)}`, { cause: err })
  }
  const certs = text.match(PEM_CERT) ?? []
  if (certs.length === 0) throw new BadInputError(`${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  for (const pem of certs) {
    try {
      new X509Certificate(pem) // eslint-disable-line no-new
    } catch (err) {
      throw new BadInputError(`${path} holds a certificate that does not parse`, { cause: err })
    }
  }
  return Buffer.from(certs.join('\n'))
}

/** The CA named by a `--ca` option, else by the `CDN_CA` environment variable; undefined for the system's CAs. */
export async function loadCa (file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Buffer | undefined> {
  const path = file ?? env.CDN_CA
  if (path == null || path === '') return undefined
  return await readCaFile(path)
}

/** undici `connect` options trusting `ca` (nothing when undefined: the system's CAs). */
export function tlsConnect (ca: Buffer | undefined): { ca?: Buffer } {
  return ca == null ? {} : { ca }
}

/** An undici Agent trusting `ca` for HTTPS origins (plain HTTP origins are unaffected). */
export function createTlsAgent (ca: Buffer | undefined, options: Agent.Options = {}): Agent {
  const connect = typeof options.connect === 'object' && options.connect != null ? options.connect : {}
  return new Agent({ ...options, connect: { ...connect, ...tlsConnect(ca) } })
}

const UNTRUSTED = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED'])

/** A hint for errors that mean "this certificate is not trusted" or "not for this host"; undefined for others. */
export function tlsErrorHint (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  if (UNTRUSTED.has(code)) return `the manager's certificate is not trusted (${code}): give its CA with --ca FILE or CDN_CA`
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'the manager\'s certificate is not for this host name (ERR_TLS_CERT_ALTNAME_INVALID)'
  if (code === 'CERT_HAS_EXPIRED') return 'the manager\'s certificate has expired (CERT_HAS_EXPIRED)'
  return undefined
}
