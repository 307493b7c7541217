/// <reference lib="dom" />
/**
 * The proxy's dashboard in a real browser (Chromium through playwright-core)
 * while a download runs through a network of real processes: the speed chart
 * draws it, the chunk strip shows chunks fetched and chunks still to come,
 * sources have short names and a health in words, and a 100-byte Range reads
 * as 100 B. The test's client reads slowly, so the download is still running
 * when the page is checked. On failure, a screenshot goes to the test's folder.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import type { Browser, Page } from 'playwright-core'
import { cdnJson, randomFile, startNetwork, tempDir, type Network } from './harness.ts'
import { hasChromium, launchChromium, newPage, screenshotOnFailure } from './browser-kit.ts'

interface Ctx { net: Network, browser: Browser, dir: string, failed: boolean }
const test = suite<Ctx>('proxy dashboard in a browser')

if (!hasChromium()) {
  console.log('SKIPPED the dashboard browser test: no Chromium (apt-get install chromium; CI always installs it)')
} else {
  test.before(async (ctx) => {
    ctx.dir = await tempDir('dashboard-ui')
    ctx.failed = false
    ctx.net = await startNetwork({ nodes: 3, extra: ['--chunk-size', '256KiB', '--node-egress', '4MB/s', '--proxy-cache', '0'] })
    ctx.browser = await launchChromium()
  })

  test.after(async (ctx) => {
    await ctx.browser?.close()
    await ctx.net?.stop()
    if (ctx.failed) console.log(`kept for debugging: ${ctx.dir}`)
    else await rm(ctx.dir, { recursive: true, force: true })
  })

  const step = async (ctx: Ctx, page: Page, name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await screenshotOnFailure(page, ctx.dir, name, fn)
    } catch (err) {
      ctx.failed = true
      throw err
    }
  }

  test('while a download runs, the page draws its speed and its chunks', async (ctx) => {
    const { net } = ctx
    const pub = await cdnJson(['publish', await randomFile(ctx.dir, 'big.bin', 40e6), '--manager', net.manager, '--token-file', net.tokenFile])
    const page = await newPage(ctx.browser)
    await page.goto(net.proxy)
    // Shown at once from the embedded snapshot, before any event arrives.
    assert.match(await page.locator('#downloads').innerText(), /none yet/)
    const res = await fetch(`${net.proxy}/c/${pub.id}`)
    const body = res.body!.getReader()
    let got = (await body.read()).value?.length ?? 0
    await step(ctx, page, 'download-running', async () => {
      await page.waitForFunction(() => {
        const fetched = document.querySelectorAll('#strip .cell.mf, #strip .cell.mH').length
        const toCome = document.querySelectorAll('#strip .cell.mw, #strip .cell.mr, #strip .cell.mh').length
        return fetched > 0 && toCome > 0 && Number((document.getElementById('speed') as HTMLElement).dataset.peak) > 0
      }, undefined, { timeout: 60_000 })
      assert.ok(await page.locator('#speed .uplot canvas').count() > 0, 'uPlot drew the chart')
      assert.match(await page.locator('#strip').innerText(), /big\.bin — active/)
      const health = await page.locator('#sources .health').allInnerTexts()
      assert.ok(health.length >= 1 && health.every(h => ['fast', 'slow', 'failing', 'unused'].includes(h)), health.join(','))
      const names = await page.locator('#sources code').allInnerTexts()
      assert.ok(names.every(n => n.length <= 14), `short names: ${names.join(', ')}`)
    })
    for (;;) {
      const r = await body.read()
      if (r.done === true) break
      got += r.value.length
    }
    assert.is(got, 40e6)
    await step(ctx, page, 'download-done', async () => {
      await page.waitForFunction(() => document.querySelectorAll('#strip .cell').length > 0 &&
        document.querySelectorAll('#strip .cell.mw, #strip .cell.mr, #strip .cell.mh').length === 0, undefined, { timeout: 30_000 })
      assert.match(await page.locator('#strip').innerText(), /big\.bin — done/)
    })
    await page.close()
  })

  test('a 100-byte Range reads as 100 B, and the player shows name, size and sources', async (ctx) => {
    const { net } = ctx
    const pub = await cdnJson(['publish', await randomFile(ctx.dir, 'small.bin', 300_000), '--manager', net.manager, '--token-file', net.tokenFile])
    const res = await fetch(`${net.proxy}/c/${pub.id}`, { headers: { range: 'bytes=1000-1099' } })
    assert.is((await res.arrayBuffer()).byteLength, 100)
    const page = await newPage(ctx.browser)
    await page.goto(net.proxy)
    await step(ctx, page, 'range', async () => {
      const row = page.locator('#downloads tr', { hasText: 'small.bin' }).first()
      assert.match(await row.innerText(), /100 B of 100 B \(100%\)/)
    })
    await page.goto(`${net.proxy}/play/${pub.id}`)
    await step(ctx, page, 'player', async () => {
      assert.match(await page.locator('#what').innerText(), /small\.bin · 293 KiB/)
      await page.waitForFunction(() => document.querySelectorAll('#sources li code').length > 0, undefined, { timeout: 30_000 })
    })
    await page.close()
  })

  test.run()
}
