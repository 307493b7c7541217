/// <reference lib="dom" />
/**
 * A real browser (Debian's Chromium, driven by playwright-core) plays a WebM
 * video through the proxy from a network of real processes, then seeks to the
 * middle and plays on. Runs wherever /usr/bin/chromium exists; CI installs it.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { cdnJson, startNetwork, type Network } from '../integration/harness.ts'

const CHROMIUM = process.env.CDN_CHROMIUM ?? '/usr/bin/chromium'
const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'clip.webm')

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--autoplay-policy=no-user-gesture-required']

if (!existsSync(CHROMIUM)) {
  console.log(`SKIPPED the browser test: ${CHROMIUM} is not installed (apt-get install chromium; CI always installs it)`)
} else {
  let net: Network
  let browser: Browser

  test.before(async () => {
    // Small chunks so that playing and seeking cross many chunks and sources.
    net = await startNetwork({ nodes: 3, extra: ['--chunk-size', '256KiB'] })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
  })

  test.after(async () => {
    await browser?.close()
    await net?.stop()
  })

  test('a WebM video plays through the proxy, seeks to the middle and plays on', async () => {
    const pub = await cdnJson(['publish', FIXTURE, '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
    const page = await browser.newPage()
    await page.goto(`${net.proxy}/play/${pub.id}`)
    const video = page.locator('video')
    await video.waitFor()
    // Playing: currentTime advances past 1 s on its own.
    await page.waitForFunction(() => (document.querySelector('video') as HTMLVideoElement).currentTime > 1, undefined, { timeout: 30_000 })
    const duration = await page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).duration)
    assert.ok(duration > 35 && duration < 45, `duration ${duration}`)
    await page.evaluate(() => { (document.querySelector('video') as HTMLVideoElement).currentTime = 20 })
    await page.waitForFunction(() => {
      const v = document.querySelector('video') as HTMLVideoElement
      return !v.seeking && v.currentTime > 21
    }, undefined, { timeout: 30_000 })
    const state = await page.evaluate(() => {
      const v = document.querySelector('video') as HTMLVideoElement
      return { paused: v.paused, error: v.error?.message ?? null, t: v.currentTime }
    })
    assert.is(state.error, null)
    assert.is(state.paused, false)
    assert.ok(state.t > 21 && state.t < 40, `playing on from the middle (t=${state.t})`)
    await page.close()
  })

  test.run()
}
