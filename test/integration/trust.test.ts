/**
 * Trust, end to end with real processes: tokens with roles made and revoked
 * through the CLI, private contents and capabilities, ownership, an HTTPS
 * manager with a private CA, and secrets kept out of every daemon's argv.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { selfSignedCert } from '../unit/tls-cert.ts'
import { CDN, cdn, cdnJson, eventually, randomFile, startNetwork, tempDir, type Network } from './harness.ts'

const MiB = 1024 * 1024
const test = suite<{ net: Network, dir: string }>('trust')

test.before(async (ctx) => {
  ctx.dir = await tempDir('trust')
  ctx.net = await startNetwork({ nodes: 3, extra: ['--replicas', '2'] })
})

test.after(async (ctx) => {
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

/** Writes a token to a file of the test's, the way a user keeps one. */
async function tokenFile (dir: string, name: string, token: string): Promise<string> {
  const path = join(dir, `${name}.token`)
  await writeFile(path, `${token}\n`, { mode: 0o600 })
  return path
}

async function resolve (net: Network, id: string, headers: Record<string, string> = {}): Promise<{ status: number, text: string }> {
  const res = await fetch(`${net.manager}/api/contents/${id}`, { headers })
  return { status: res.status, text: await res.text() }
}

/** The NUL-separated argv of a live process, as `ps` shows it to every user. */
async function argv (pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ')
}

test('the first start wrote an admin token readable by its owner only; nothing is listed without a token', async ({ net }) => {
  assert.is((await stat(net.adminTokenFile)).mode & 0o777, 0o600)
  assert.is((await readFile(net.adminTokenFile, 'utf8')).trim(), net.adminToken)
  for (const path of ['/api/contents', '/api/nodes', '/api/events', '/api/health/replication']) {
    const res = await fetch(`${net.manager}${path}`)
    assert.is(res.status, 401, path)
    await res.arrayBuffer()
  }
  const ls = await cdn(['ls', '--manager', net.manager], { CDN_TOKEN: '' })
  assert.is.not(ls.code, 0)
  assert.match(ls.stderr, /^cdn: .*(token|authorization).*\[ERR_UNAUTHORIZED\]\n$/)
})

test('no daemon started by cdn up has a token in its argv, and help prints no secret', async ({ net }) => {
  const secrets = [net.token, net.adminToken, net.joinToken]
  const pids = [net.proc.pid!, net.managerPid, net.proxyPid, ...net.nodes.map(n => n.pid)]
  for (const pid of pids) {
    const line = await argv(pid)
    assert.ok(line.includes('cdn.ts'), `pid ${pid} is one of ours: ${line}`)
    for (const s of secrets) assert.not.ok(line.includes(s), `pid ${pid} shows a secret in ps: ${line}`)
  }
  const env = { CDN_TOKEN: net.token, CDN_JOIN_TOKEN: net.joinToken, CDN_PUBLISHER_TOKENS: net.token, CDN_MANAGER: 'http://user:secret-in-url@127.0.0.1:1' }
  for (const cmd of [['publish'], ['share'], ['token', 'create'], ['node', 'start'], ['manager', 'start'], ['ls'], ['up']]) {
    const r = await cdn([...cmd, '--help'], env)
    assert.is(r.code, 0, r.stderr)
    for (const s of [...secrets, 'secret-in-url']) assert.not.ok(r.stdout.includes(s), `cdn ${cmd.join(' ')} --help prints a secret`)
  }
  const old = await cdn(['publish', 'x', '--token', 'not-a-real-token'])
  assert.is.not(old.code, 0, 'the old --token flag is gone')
})

test('tokens made with the CLI work with their role; a revoked one is refused at once', async ({ net, dir }) => {
  const admin = ['--manager', net.manager, '--token-file', net.adminTokenFile]
  const bob = await cdnJson(['token', 'create', '--role', 'publisher', '--name', 'bob', ...admin])
  assert.match(bob.id, /^[0-9a-f]{12}$/)
  assert.equal([bob.role, bob.name, bob.expiresAt], ['publisher', 'bob', null])
  const bobFile = await tokenFile(dir, 'bob', bob.token)
  const viewer = await cdnJson(['token', 'create', '--role', 'reader', '--name', 'viewer', '--ttl', '1h', ...admin])
  assert.ok(Date.parse(viewer.expiresAt) > Date.now())
  const viewerFile = await tokenFile(dir, 'viewer', viewer.token)

  const file = await randomFile(dir, 'bob.bin', MiB)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', bobFile])
  assert.ok((await cdnJson(['ls', '--manager', net.manager, '--token-file', viewerFile])).contents.some((c: any) => c.id === pub.id && c.owner === bob.id))
  const readerPublish = await cdn(['publish', file, '--manager', net.manager, '--token-file', viewerFile])
  assert.is.not(readerPublish.code, 0)
  assert.match(readerPublish.stderr, /ERR_FORBIDDEN/)

  const listed = await cdnJson(['token', 'ls', ...admin])
  assert.ok(listed.tokens.some((t: any) => t.id === bob.id && t.revoked === false))
  assert.not.ok(JSON.stringify(listed).includes(bob.token), 'token ls never shows a token')
  assert.equal(await cdnJson(['token', 'revoke', bob.id, ...admin]), { id: bob.id, revoked: true })
  const after = await cdn(['ls', '--manager', net.manager, '--token-file', bobFile])
  assert.is.not(after.code, 0)
  assert.match(after.stderr, /revoked.*\[ERR_UNAUTHORIZED\]/)
  const res = await fetch(`${net.manager}/api/contents`, { headers: { authorization: `Bearer ${bob.token}` } })
  assert.is(res.status, 401)
  await res.arrayBuffer()
  // A publisher may not make tokens.
  const denied = await cdn(['token', 'create', '--role', 'admin', '--name', 'me', '--manager', net.manager, '--token-file', net.tokenFile])
  assert.match(denied.stderr, /ERR_FORBIDDEN/)
})

test('a private content resolves only with a valid capability or an allowed token', async ({ net, dir }) => {
  const file = await randomFile(dir, 'private.bin', MiB + 123)
  const pub = await cdnJson(['publish', file, '--private', '--name', 'diary.mp4', '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
  assert.is(pub.private, true)
  assert.not.ok(pub.link.includes('?k='), 'a private publish prints no key')

  const bare = await resolve(net, pub.id)
  assert.is(bare.status, 401)
  assert.not.ok(bare.text.includes('diary') || bare.text.includes('"key"') || net.nodes.some(n => bare.text.includes(n.peerId)))

  const shared = await cdnJson(['share', pub.id, '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
  assert.equal(Object.keys(shared).sort(), ['expiresAt', 'id', 'link', 'url'])
  const cap = new URL(shared.link).searchParams.get('cap')!
  assert.is(shared.link, `cdn://${pub.id}?cap=${cap}`)
  assert.is(shared.url, `${net.proxy}/c/${pub.id}?cap=${cap}`)
  const hours = (Date.parse(shared.expiresAt) - Date.now()) / 3600_000
  assert.ok(hours > 23 && hours <= 24, `default lifetime 24 h, got ${hours}`)
  const opened = await resolve(net, pub.id, { 'x-cdn-capability': cap })
  assert.is(opened.status, 200)
  const key = JSON.parse(opened.text).key

  // Forged: the signed body changed (a later expiry), the signature kept.
  const [body, sig] = cap.split('.')
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString())
  const forged = `${Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 365 * 86400_000 })).toString('base64url')}.${sig}`
  assert.is((await resolve(net, pub.id, { 'x-cdn-capability': forged })).status, 403)

  // Expired: a capability of one second, once its second is over.
  const short = await cdnJson(['share', pub.id, '--ttl', '1s', '--manager', net.manager, '--token-file', net.tokenFile])
  const shortCap = new URL(short.link).searchParams.get('cap')!
  await eventually('the one-second capability expires', async () => (await resolve(net, pub.id, { 'x-cdn-capability': shortCap })).status === 403, 30_000)
  const expired = await resolve(net, pub.id, { 'x-cdn-capability': shortCap })
  assert.match(expired.text, /expired/)
  assert.not.ok(expired.text.includes(key))

  // Tokens: the owner and admins and readers resolve it; another publisher does not.
  assert.is((await resolve(net, pub.id, { authorization: `Bearer ${net.adminToken}` })).status, 200)
  const carol = await cdnJson(['token', 'create', '--role', 'publisher', '--name', 'carol', '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is((await resolve(net, pub.id, { authorization: `Bearer ${carol.token}` })).status, 403)

  // The key link, fetched with the owner's token.
  const keyLink = await cdnJson(['share', pub.id, '--key-link', '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
  assert.equal(keyLink, { id: pub.id, link: `cdn://${pub.id}?k=${key}`, url: `${net.proxy}/c/${pub.id}?k=${key}`, expiresAt: null })
  const carolFile = await tokenFile(dir, 'carol', carol.token)
  const notHers = await cdn(['share', pub.id, '--manager', net.manager, '--token-file', carolFile])
  assert.match(notHers.stderr, /another publisher.*\[ERR_FORBIDDEN\]/)
})

test("a publisher cannot delete another publisher's content; its owner can", async ({ net, dir }) => {
  const file = await randomFile(dir, 'alice.bin', MiB)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const mallory = await cdnJson(['token', 'create', '--role', 'publisher', '--name', 'mallory', '--manager', net.manager, '--token-file', net.adminTokenFile])
  const malloryFile = await tokenFile(dir, 'mallory', mallory.token)
  const refused = await cdn(['rm', pub.id, '--manager', net.manager, '--token-file', malloryFile])
  assert.is.not(refused.code, 0)
  assert.match(refused.stderr, /another publisher.*\[ERR_FORBIDDEN\]/)
  const res = await fetch(`${net.manager}/api/contents/${pub.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${mallory.token}` } })
  assert.is(res.status, 403)
  await res.arrayBuffer()
  assert.is((await resolve(net, pub.id)).status, 200, 'still there')
  assert.equal(await cdnJson(['rm', pub.id, '--manager', net.manager, '--token-file', net.tokenFile]), { id: pub.id, deleted: true })
  assert.is((await resolve(net, pub.id)).status, 404)
})

// ---- HTTPS ------------------------------------------------------------------

/** Starts a daemon `cdn <args> --json` with secrets in its environment and waits for its ready line. */
async function daemon (args: string[], env: Record<string, string>, logFile: string): Promise<{ proc: ChildProcess, info: any }> {
  const log = await open(logFile, 'a')
  const proc = spawn(process.execPath, [CDN, ...args, '--json'], { stdio: ['ignore', 'pipe', log.fd], env: { ...process.env, ...env } })
  proc.once('exit', () => { void log.close() })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`cdn ${args.slice(0, 2).join(' ')} exited ${code} before it was ready`)) })
  })
  return { proc, info: JSON.parse(line) }
}

async function stop (proc: ChildProcess): Promise<void> {
  if (proc.exitCode != null || proc.signalCode != null) return
  const exited = new Promise(resolve => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  await exited
}

test('an HTTPS manager: the CLI works with --ca or CDN_CA and refuses it without; nodes still store', async ({ dir }) => {
  const tls = await selfSignedCert(dir)
  const managerDir = join(dir, 'https-manager')
  const publisherToken = 'publisher-over-tls-0123456789'
  const joinToken = 'join-over-tls-0123456789'
  const manager = await daemon(['manager', 'start', '--dir', managerDir, '--http-port', '0', '--p2p-port', '0', '--replicas', '1', '--tls-cert', tls.cert, '--tls-key', tls.key],
    { CDN_PUBLISHER_TOKENS: publisherToken, CDN_JOIN_TOKENS: joinToken }, join(dir, 'https-manager.log'))
  let node: { proc: ChildProcess, info: any } | undefined
  try {
    const url = String(manager.info.http)
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
    node = await daemon(['node', 'start', '--manager', String(manager.info.multiaddrs[0]), '--data', join(dir, 'https-node'), '--capacity', '1GB'], { CDN_JOIN_TOKEN: joinToken }, join(dir, 'https-node.log'))
    for (const pid of [manager.proc.pid!, node.proc.pid!]) {
      const line = await argv(pid)
      assert.not.ok(line.includes(publisherToken) || line.includes(joinToken), line)
    }
    const adminFile = join(managerDir, 'admin.token')
    await eventually('the node joined', async () => {
      const r = await cdn(['status', '--manager', url, '--ca', tls.cert, '--token-file', adminFile, '--json'])
      return r.code === 0 && JSON.parse(r.stdout).nodes.some((n: any) => n.state === 'alive')
    }, 60_000)

    const untrusted = await cdn(['ls', '--manager', url, '--token-file', adminFile], { CDN_CA: '' })
    assert.is.not(untrusted.code, 0)
    assert.match(untrusted.stderr, /not trusted.*--ca/)

    const file = await randomFile(dir, 'tls.bin', MiB + 7)
    const pub = await cdnJson(['publish', file, '--manager', url, '--ca', tls.cert], { CDN_TOKEN: publisherToken })
    assert.is(pub.replicas, 1)
    const listed = await cdnJson(['ls', '--manager', url, '--token-file', adminFile], { CDN_CA: tls.cert })
    assert.ok(listed.contents.some((c: any) => c.id === pub.id && c.size === MiB + 7))

    // The API is not served in clear on that port; a plain request gets a one-line refusal, no data.
    const plain = await fetch(`${url.replace('https://', 'http://')}/api/contents/${pub.id}`)
    assert.is(plain.status, 400)
    assert.match(await plain.text(), /HTTPS only/)
  } finally {
    if (node != null) await stop(node.proc)
    await stop(manager.proc)
  }
})

test.run()
