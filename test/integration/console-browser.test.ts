/// <reference lib="dom" />
/**
 * The manager's console in a real browser (Chromium through playwright-core)
 * on a `cdn up` network of real processes: a wrong token is refused and
 * leaves no session; after login with the admin token every node is listed;
 * the session cookie opens nothing but the console; and under load, the hot
 * content's chart marks the mirror (the setup of pool-hot.test.ts: capped
 * nodes, quick rounds). On failure, a screenshot goes to the test's folder.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import type { Browser, Page } from 'playwright-core'
import { cdnJson, hotLoad, randomFile, startNetwork, tempDir, type Network } from './harness.ts'
import { hasChromium, launchChromium, loginConsole, newPage, screenshotOnFailure } from './browser-kit.ts'

interface Ctx { net: Network, browser: Browser, dir: string, failed: boolean }
const test = suite<Ctx>('manager console in a browser')

if (!hasChromium()) {
  console.log('SKIPPED the console browser test: no Chromium (apt-get install chromium; CI always installs it)')
} else {
  test.before(async (ctx) => {
    ctx.dir = await tempDir('console-ui')
    ctx.failed = false
    ctx.net = await startNetwork({ nodes: 6, extra: ['--heartbeat', '500ms', '--dead-after', '3s', '--reconcile', '500ms', '--node-egress', '2MB/s', '--proxy-cache', '0'] })
    ctx.browser = await launchChromium()
  })

  test.after(async (ctx) => {
    await ctx.browser?.close()
    await ctx.net?.stop()
    if (ctx.failed) console.log(`kept for debugging: ${ctx.dir}`)
    else await rm(ctx.dir, { recursive: true, force: true })
  })

  const step = async <T>(ctx: Ctx, page: Page, name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await screenshotOnFailure(page, ctx.dir, name, fn)
    } catch (err) {
      ctx.failed = true
      throw err
    }
  }

  test('a wrong token is refused with a clear message and no session', async (ctx) => {
    const { net } = ctx
    const context = await ctx.browser.newContext()
    const page = await context.newPage()
    await step(ctx, page, 'wrong-token', async () => {
      await page.goto(`${net.manager}/ui`)
      await page.fill('#token', 'not-the-admin-token')
      await page.click('button[type=submit]')
      assert.match(await page.locator('#login-error').innerText(), /Refused: invalid token/)
      assert.is(page.url(), `${net.manager}/ui/login`, 'the token went in the body, not the URL')
      assert.equal(await context.cookies(), [], 'no session cookie')
      // A publisher token is a real token, but not one that opens the console.
      await page.fill('#token', net.token)
      await page.click('button[type=submit]')
      assert.match(await page.locator('#login-error').innerText(), /needs an admin token/)
      assert.equal(await context.cookies(), [])
      const data = await page.request.get(`${net.manager}/ui/api/state`)
      assert.is(data.status(), 401)
    })
    await context.close()
  })

  test('after login, the pool shows every node; the cookie opens the console only', async (ctx) => {
    const { net } = ctx
    const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    await step(ctx, page, 'pool', async () => {
      await loginConsole(page, net.manager, net.adminToken)
      const [cookie] = await context.cookies()
      assert.is(cookie.httpOnly, true)
      assert.is(cookie.sameSite, 'Strict')
      assert.is(cookie.path, '/ui')
      assert.is.not(cookie.value, net.adminToken)
      await page.waitForFunction((n) => document.querySelectorAll('#nodes tr.node.s-alive').length === n, net.nodes.length, { timeout: 30_000 })
      const shown = await page.locator('#nodes tr.node').evaluateAll(rows => rows.map(r => (r as HTMLElement).dataset.peer))
      assert.equal(shown.sort(), net.nodes.map(n => n.peerId).sort())
      // The token API takes bearer tokens only: the session cookie is no credential there.
      const api = await fetch(`${net.manager}/api/nodes`, { headers: { cookie: `${cookie.name}=${cookie.value}` } })
      assert.is(api.status, 401)
      const ui = await fetch(`${net.manager}/ui/api/state`, { headers: { cookie: `${cookie.name}=${cookie.value}` } })
      assert.is(ui.status, 200)
    })
    await context.close()
  })

  test('under load, the hot content\'s chart marks a mirror', async (ctx) => {
    const { net } = ctx
    const pub = await cdnJson(['publish', await randomFile(ctx.dir, 'hot.bin', 1e6), '--manager', net.manager, '--token-file', net.tokenFile])
    const page = await newPage(ctx.browser)
    await step(ctx, page, 'mirror', async () => {
      await loginConsole(page, net.manager, net.adminToken)
      await page.click('nav a[href="#contents"]')
      await page.click(`[data-select="${pub.id}"]`)
      await page.waitForSelector('#chart-box .uplot canvas', { timeout: 30_000 })
      const load = hotLoad(net.proxy, pub.id)
      try {
        await page.waitForSelector('#marks li.mark[data-reason=mirror][data-kind=copies-added]', { timeout: 120_000 })
      } finally {
        const { failures } = await load.stop()
        assert.equal(failures, [])
      }
      const copies = await page.locator(`tr.content[data-id="${pub.id}"] td.copies`).innerText()
      assert.ok(Number(copies.split('–').at(-1)) > 3, `more than the base 3 copies shown (${copies})`)
    })
    await page.close()
  })

  test.run()
}
