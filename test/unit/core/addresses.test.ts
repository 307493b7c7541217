import { createServer } from 'node:http'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { defaultAnnounceHost, splitAnnounce, tcpMultiaddr, type Interfaces } from '../../../core/addresses.ts'
import { rewriteHost } from '../../../core/host.ts'
import { bindPlanned, listenHttp, PortBook, PortInUseError } from '../../../core/ports.ts'
import { ensureJoinToken, joinCommand, readManagerAddress, writeManagerAddress } from '../../../manager/nodes/join-command.ts'

const IFACES: Interfaces = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
    { address: '2001:db8::5', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: '2001:db8::5/64', scopeid: 0 },
    { address: '10.77.0.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '10.77.0.5/24' }
  ]
}

test('a wildcard listener announces an external interface address, never the wildcard', () => {
  assert.is(defaultAnnounceHost('0.0.0.0', IFACES), '10.77.0.5')
  assert.is(defaultAnnounceHost('::', IFACES), '2001:db8::5')
  assert.is(defaultAnnounceHost('[::]', IFACES), '2001:db8::5')
  assert.is(defaultAnnounceHost('10.1.2.3', IFACES), '10.1.2.3')
  assert.is(defaultAnnounceHost('127.0.0.1', IFACES), '127.0.0.1')
  // A machine with loopback only still gets something dialable from itself.
  assert.is(defaultAnnounceHost('0.0.0.0', { lo: IFACES.lo }), '127.0.0.1')
})

test('--announce values split into the HTTP address, libp2p addresses and a host for both', () => {
  assert.equal(splitAnnounce(['http://10.0.0.2:9000', '/dns/node.example/tcp/4001']), { p2p: ['/dns/node.example/tcp/4001'], http: 'http://10.0.0.2:9000' })
  assert.equal(splitAnnounce(['node7.example']), { p2p: [], host: 'node7.example' })
  assert.throws(() => splitAnnounce(['http://0.0.0.0:9000']), /wildcard/)
  assert.throws(() => splitAnnounce(['0.0.0.0']), /wildcard/)
  assert.throws(() => splitAnnounce(['http://10.0.0.2']), /explicit port/)
  assert.throws(() => splitAnnounce(['http://a:1', 'http://b:2']), /two HTTP addresses/)
  assert.is(tcpMultiaddr('10.0.0.2', 7071), '/ip4/10.0.0.2/tcp/7071')
  assert.is(tcpMultiaddr('[::1]', 7071), '/ip6/::1/tcp/7071')
  assert.is(tcpMultiaddr('manager.example', 7071), '/dns/manager.example/tcp/7071')
})

test('announced libp2p addresses move to the announce host; the /http data address stays as it is', () => {
  const peer = '/p2p/12D3KooWB9teQ7jcwYna25hZWqqeKLVj4YV12aFHbrvvSGBUTNec'
  const out = rewriteHost([
    multiaddr(`/ip4/127.0.0.1/tcp/4001${peer}`),
    multiaddr(`/ip4/172.17.0.1/tcp/4001${peer}`),
    multiaddr(`/ip4/10.77.0.5/tcp/9000/http${peer}`)
  ], '10.77.0.5').map(String)
  assert.equal(out, [`/ip4/10.77.0.5/tcp/4001${peer}`, `/ip4/10.77.0.5/tcp/9000/http${peer}`])
})

test('ports persist in the data directory; a named port wins over a saved one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-ports-'))
  try {
    const first = await PortBook.open(dir)
    assert.equal(first.plan('p2p', undefined, 7071), { port: 7071, source: 'default' })
    await first.record({ http: 40001, p2p: 40002 })
    const again = await PortBook.open(dir)
    assert.equal(again.plan('p2p', undefined, 7071), { port: 40002, source: 'saved' })
    assert.equal(again.plan('http', 0, 7070), { port: 0, source: 'flag' })
    assert.equal(JSON.parse(await readFile(join(dir, 'ports.json'), 'utf8')), { http: 40001, p2p: 40002 })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a taken port is an error naming it, unless it was only the saved one of a role that may move', async () => {
  const holder = createServer()
  const { port } = await listenHttp(holder, '127.0.0.1', 0)
  const servers: Array<ReturnType<typeof createServer>> = []
  const bind = async (p: number): Promise<number> => {
    const s = createServer()
    servers.push(s)
    return (await listenHttp(s, '127.0.0.1', p)).port
  }
  try {
    let err: unknown
    try {
      await bindPlanned({ port, source: 'default' }, 'http', '127.0.0.1', bind, { fallbackToAny: true })
    } catch (e) { err = e }
    assert.instance(err, PortInUseError)
    assert.is((err as PortInUseError).port, port)
    assert.match((err as Error).message, new RegExp(`HTTP port ${port} on 127.0.0.1 is already in use`))
    let moved = 0
    const got = await bindPlanned({ port, source: 'saved' }, 'http', '127.0.0.1', bind, { fallbackToAny: true, onFallback: () => { moved++ } })
    assert.is.not(got, port)
    assert.is(moved, 1)
  } finally {
    holder.close()
    for (const s of servers) s.close()
  }
})

test('the join command names the token file and the manager, never the token', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-join-'))
  try {
    const token = await ensureJoinToken(dir)
    assert.is(await ensureJoinToken(dir), token, 'the token is stable across starts')
    assert.is((await stat(join(dir, 'join.token'))).mode & 0o777, 0o600)
    const peerId = '12D3KooWB9teQ7jcwYna25hZWqqeKLVj4YV12aFHbrvvSGBUTNec'
    await writeManagerAddress(dir, { peerId, multiaddrs: [`/ip4/10.77.0.2/tcp/7071/p2p/${peerId}`], http: 'http://10.77.0.2:7070', reachableFromOtherHosts: true })
    const j = joinCommand(dir, await readManagerAddress(dir))
    assert.ok(!j.command.includes(token))
    assert.is(j.manager, `/ip4/10.77.0.2/tcp/7071/p2p/${peerId}`)
    assert.is(j.command, `CDN_JOIN_TOKEN="$(cat ${join(dir, 'join.token')})" cdn node start --manager ${j.manager} --listen 0.0.0.0 --data ./cdn-node`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
