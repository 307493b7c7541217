/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl in
 * a directory of the test's: what an operator's private CA would give.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'

export interface TestCert { cert: string, key: string }

export async function selfSignedCert (dir: string): Promise<TestCert> {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  await promisify(execFile)('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  return { cert, key }
}
