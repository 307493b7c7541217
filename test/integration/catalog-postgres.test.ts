/**
 * The manager with its catalog in a real PostgreSQL (a throwaway cluster):
 * a whole `cdn up` network publishes, serves through the proxy and deletes;
 * and a pool that grew up on SQLite is migrated (`cdn manager migrate`) and
 * serves the same content from PostgreSQL.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startPostgres, type TestPostgres } from '../support/postgres.ts'
import { blobFiles, cdn, cdnJson, eventually, getJson, randomFile, sha256File, startNetwork, tempDir, type Network } from './harness.ts'

const MiB = 1024 * 1024
const test = suite<{ cluster: TestPostgres, dir: string }>('catalog on PostgreSQL')

test.before(async (ctx) => {
  ctx.cluster = await startPostgres()
  ctx.dir = await tempDir('pg-files')
})

test.after(async (ctx) => {
  await ctx.cluster?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function query (url: string, sql: string, params: unknown[] = []): Promise<any[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(sql, params)).rows
  } finally {
    await client.end()
  }
}

async function viaProxy (net: Network, id: string): Promise<string> {
  const res = await fetch(`${net.proxy}/c/${id}`, { signal: AbortSignal.timeout(60_000) })
  assert.is(res.status, 200)
  return createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')
}

async function blobsOf (net: Network, names: string[]): Promise<number> {
  let n = 0
  for (const node of net.nodes) {
    const files = await blobFiles(node.data)
    for (const name of names) if (files.has(name)) n++
  }
  return n
}

test('a manager on PostgreSQL publishes, serves through the proxy and deletes', async ({ cluster, dir }) => {
  const url = await cluster.createDatabase()
  const net = await startNetwork({ nodes: 3, env: { CDN_DATABASE_URL: url } })
  try {
    const file = await randomFile(dir, 'pg.bin', 5 * MiB + 321)
    const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
    assert.is(await viaProxy(net, pub.id), await sha256File(file))

    // The catalog is PostgreSQL's: the content's row is there, and no SQLite file was made.
    const rows = await query(url, 'SELECT state, size::float8 AS size FROM contents WHERE id = $1', [pub.id])
    assert.equal(rows, [{ state: 'visible', size: 5 * MiB + 321 }])
    assert.not.ok(existsSync(join(net.dir, 'manager', 'catalog.db')), 'no SQLite catalog beside the PostgreSQL one')
    const chunks = (await query(url, 'SELECT cid FROM chunks WHERE content = $1', [pub.id])).map(r => r.cid as string)
    assert.is(chunks.length, 6)
    assert.is(await blobsOf(net, chunks), 6 * 3, 'every chunk on 3 nodes')

    const removed = await cdn(['rm', pub.id, '--manager', net.manager, '--token-file', net.tokenFile])
    assert.is(removed.code, 0, removed.stderr)
    assert.is((await getJson(`${net.manager}/api/contents/${pub.id}`)).status, 404)
    assert.equal(await query(url, 'SELECT reason FROM tombstones WHERE id = $1', [pub.id]), [{ reason: 'deleted' }])
    await eventually('the nodes to drop the deleted chunks', async () => await blobsOf(net, chunks) === 0, 60_000)
  } finally {
    await net.stop()
  }
})

test('a SQLite pool migrated to PostgreSQL serves the same content; the copy refuses a running manager and a used target', async ({ cluster, dir }) => {
  const url = await cluster.createDatabase()
  let net = await startNetwork({ nodes: 3 })
  const netDir = net.dir
  const sqlite = join(netDir, 'manager', 'catalog.db')
  const migrate = async (): Promise<Awaited<ReturnType<typeof cdn>>> => await cdn(['manager', 'migrate', '--from', sqlite, '--json'], { CDN_DATABASE_URL: url })
  try {
    const file = await randomFile(dir, 'sqlite.bin', 3 * MiB + 7)
    const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])

    const busy = await migrate()
    assert.is.not(busy.code, 0)
    assert.match(busy.stderr, /in use.*stop the manager first/)
    assert.is(busy.stderr.trim().split('\n').length, 1, 'one-line refusal')
    assert.equal(await query(url, "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'"), [{ n: 0 }], 'nothing written')

    await net.stop({ keepDir: true })
    const done = await migrate()
    assert.is(done.code, 0, done.stderr)
    const report = JSON.parse(done.stdout)
    assert.is(report.tables.contents, 1)
    assert.is(report.tables.chunks, 4)
    assert.ok(report.tables.copies >= 4 * 3)
    assert.ok(report.tables.events > 0)
    assert.match(done.stderr, /contents: 1\/1 rows/)
    assert.not.match(done.stderr + done.stdout, /postgresql:\/\//, 'the connection string is never printed')

    const again = await migrate()
    assert.is.not(again.code, 0)
    assert.match(again.stderr, /not empty/)

    net = await startNetwork({ nodes: 3, dir: netDir, env: { CDN_DATABASE_URL: url } })
    assert.is(await viaProxy(net, pub.id), await sha256File(file))
    const adminToken = (await readFile(join(netDir, 'manager', 'admin.token'), 'utf8')).trim()
    const ls = await cdnJson(['ls', '--manager', net.manager], { CDN_TOKEN: adminToken })
    assert.equal(ls.contents.map((c: any) => c.id), [pub.id], 'the migrated admin token lists the migrated content')
  } finally {
    await net.stop()
  }
})

test.run()
