import { Command, InvalidArgumentError } from 'commander'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { addAddressOptions } from '../../../cli/address-options.ts'
import { withConfigFile } from '../../../cli/config-options.ts'
import { readConfigFile } from '../../../core/config-file.ts'

/** A start command shaped like the daemons' own; resolves with the options its action saw. */
async function parse (config: unknown, argv: string[] = []): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-config-'))
  try {
    const file = join(dir, 'daemon.json')
    await writeFile(file, typeof config === 'string' ? config : JSON.stringify(config))
    let seen: Record<string, unknown> = {}
    const program = new Command('cdn').exitOverride()
    const start = program.command('node').command('start')
      .option('--capacity <size>', 'disk', '10GB')
      .option('--replicas <n>', 'copies', (v: string) => {
        const n = Number(v)
        if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('--replicas must be an integer ≥ 1')
        return n
      })
      .option('--no-restart', 'stay dead')
      .option('--join-token-file <file>', 'where the secret is')
    addAddressOptions(start, { http: '7070', p2p: '7071' })
    withConfigFile(start)
    start.action((o) => { seen = o })
    await program.parseAsync(['node', 'cdn', 'node', 'start', '--config', file, ...argv])
    return seen
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function failure (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
  return 'did not fail'
}

test('a config file sets what the flags would, parsed the same way; flags given win', async () => {
  const o = await parse({ listen: '0.0.0.0', 'http-port': 7080, p2pPort: '7081', announce: ['http://10.0.0.5:7080', '/dns/n.example/tcp/7081'], capacity: '200GB', replicas: 2, restart: false })
  assert.equal(o.listen, ['0.0.0.0'])
  assert.is(o.httpPort, 7080)
  assert.is(o.p2pPort, 7081)
  assert.equal(o.announce, ['http://10.0.0.5:7080', '/dns/n.example/tcp/7081'])
  assert.is(o.capacity, '200GB')
  assert.is(o.replicas, 2)
  assert.is(o.restart, false)
  const flagged = await parse({ 'http-port': 7080, capacity: '200GB' }, ['--http-port', '9000'])
  assert.is(flagged.httpPort, 9000)
  assert.is(flagged.capacity, '200GB')
  assert.is((await parse({})).capacity, '10GB')
})

test('bad config files are one clear error each, and secrets are refused', async () => {
  assert.match(await failure(parse({ 'join-token': 'abc' })), /"join-token" is a secret/)
  assert.match(await failure(parse({ 'http-port': 'x' })), /"http-port": --http-port must be a port number/)
  assert.match(await failure(parse({ replicas: 0 })), /"replicas": --replicas must be an integer ≥ 1/)
  assert.match(await failure(parse({ colour: 'blue' })), /"colour" is not an option of cdn node start/)
  assert.match(await failure(parse({ capacity: ['1GB', '2GB'] })), /"capacity" takes one value, not a list/)
  assert.match(await failure(parse({ restart: 'no' })), /"restart" must be true or false/)
  assert.match(await failure(parse('{ "listen": ')), /is not valid JSON/)
  assert.match(await failure(parse('[1, 2]')), /must hold one JSON object/)
})

test('the example configs in deploy/ are valid and carry no secret', async () => {
  const deploy = join(import.meta.dirname, '..', '..', '..', 'deploy')
  const manager = await readConfigFile(join(deploy, 'manager.json'))
  assert.is(manager['p2p-port'], 7071)
  assert.is(manager.listen, '0.0.0.0')
  assert.match(String((await readConfigFile(join(deploy, 'node.json'))).manager), /^\/ip4\/.+\/tcp\/7071\/p2p\//)
  assert.is((await readConfigFile(join(deploy, 'proxy.json'))).listen, '127.0.0.1')
})

test.run()
