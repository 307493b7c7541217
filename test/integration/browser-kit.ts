/**
 * Shared by the browser tests of the consoles and by scripts/screenshots.ts:
 * Chromium through playwright-core, a screenshot into the test's folder when
 * a step fails, the console's login, and viewers that keep a content hot.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

export const CHROMIUM = process.env.CDN_CHROMIUM ?? '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--autoplay-policy=no-user-gesture-required']

export function hasChromium (): boolean {
  return existsSync(CHROMIUM)
}

export async function launchChromium (): Promise<Browser> {
  return await chromium.launch({ executablePath: CHROMIUM, args: FLAGS })
}

export async function newPage (browser: Browser): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.on('pageerror', (err) => { console.log(`page error on ${page.url()}: ${err.message}`) })
  return page
}

/** Runs `step`; when it throws, the page as it was goes to `<dir>/<name>.png` first. */
export async function screenshotOnFailure<T> (page: Page, dir: string, name: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (err) {
    const path = join(dir, `${name}.png`)
    await page.screenshot({ path, fullPage: true }).then(
      () => { console.log(`screenshot of the failed step: ${path}`) },
      (e: unknown) => { console.log(`no screenshot of the failed step: ${String(e)}`) }
    )
    throw err
  }
}

/** Logs in to the console at `manager`/ui with `token`, the way an operator does: the form, a POST, a cookie. */
export async function loginConsole (page: Page, manager: string, token: string): Promise<void> {
  await page.goto(`${manager}/ui`)
  await page.fill('#token', token)
  await Promise.all([page.waitForURL(`${manager}/ui`), page.click('button[type=submit]')])
}
