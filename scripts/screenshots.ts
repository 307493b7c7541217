/**
 * Makes the README's screenshots of both consoles from a real local network
 * (`cdn up`, every role its own process): the proxy's dashboard during a
 * download, the player, and the manager's console while a hot content is
 * mirrored and, once the load stops, trimmed back.
 *
 *   node scripts/screenshots.ts [out-dir]     (default docs/img)
 *
 * Needs Chromium (CDN_CHROMIUM, default /usr/bin/chromium).
 */
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { cdnJson, eventually, hotLoad, randomFile, startNetwork, tempDir } from '../test/integration/harness.ts'
import { launchChromium, loginConsole, newPage } from '../test/integration/browser-kit.ts'

const out = process.argv[2] ?? join(import.meta.dirname, '..', 'docs', 'img')
await mkdir(out, { recursive: true })
const dir = await tempDir('screenshots')
const net = await startNetwork({
  nodes: 6,
  // As in test/integration/pool-hot.test.ts: capped nodes, quick rounds, so a hot content is mirrored within seconds.
  extra: ['--heartbeat', '500ms', '--dead-after', '3s', '--reconcile', '500ms', '--node-egress', '2MB/s', '--proxy-cache', '0']
})
// Stopped by hand: the network goes down with us.
process.once('SIGINT', () => { void net.stop().finally(() => process.exit(130)) })
const browser = await launchChromium()
const shot = async (page: import('playwright-core').Page, name: string): Promise<void> => {
  await page.screenshot({ path: join(out, name), fullPage: true })
  console.log(`wrote ${join(out, name)}`)
}
try {
  const publish = async (file: string): Promise<string> => (await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])).id
  const big = await publish(await randomFile(dir, 'lecture-recording.bin', 24e6))
  const hot = await publish(await randomFile(dir, 'launch-trailer.bin', 1e6))
  const clip = await publish(join(import.meta.dirname, '..', 'test', 'fixtures', 'clip.webm'))

  const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

  // The player, playing.
  const player = await newPage(browser)
  await player.goto(`${net.proxy}/play/${clip}`)
  await player.waitForFunction(() => (document.querySelector('video') as HTMLVideoElement).currentTime > 2, undefined, { timeout: 60_000 })
  await shot(player, 'proxy-player.png')
  await player.close()

  // The console before any load.
  const ui = await newPage(browser)
  await loginConsole(ui, net.manager, (await readFile(net.adminTokenFile, 'utf8')).trim())
  await ui.waitForFunction(() => document.querySelectorAll('#nodes tr.node').length === 6, undefined, { timeout: 30_000 })

  // Load: viewers keep one content hot, and one more reads a long download slowly (still running when pictured).
  const load = hotLoad(net.proxy, hot)
  const dash = await newPage(browser)
  await dash.goto(net.proxy)
  try {
    await sleep(6000)
    const body = (await fetch(`${net.proxy}/c/${big}`)).body!.getReader()
    await body.read()
    await dash.waitForFunction(() => document.querySelectorAll('#strip .cell.mf, #strip .cell.mH').length > 4 && document.querySelectorAll('#strip .cell.mw').length > 4, undefined, { timeout: 60_000 })
    await sleep(1500)
    await shot(dash, 'proxy-dashboard.png')
    void body.cancel()
    await shot(ui, 'console-pool.png')
    await ui.goto(`${net.manager}/ui?content=${hot}#contents`)
    // The controller answers the load with mirror copies, or with migrate copies when it sheds an egress-high holder first.
    await ui.waitForSelector('#marks li.mark[data-kind=copies-added]', { timeout: 180_000 })
    await sleep(6000)
    await shot(ui, 'console-mirror.png')
  } finally {
    console.log(await load.stop())
  }
  await ui.waitForSelector('#marks li.mark[data-reason=trim]', { timeout: 120_000 })
  await sleep(3000)
  await shot(ui, 'console-mirror-trim.png')
  await ui.goto(`${net.manager}/ui#health`)
  await eventually('health shown', async () => await ui.locator('#health-cards .card').count() > 0)
  await shot(ui, 'console-health.png')
  await ui.goto(`${net.manager}/ui#events`)
  await ui.waitForSelector('#events tr.event')
  await shot(ui, 'console-events.png')
} finally {
  await browser.close()
  await net.stop()
  await rm(dir, { recursive: true, force: true })
}
