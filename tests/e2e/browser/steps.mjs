// steps.mjs - the frame of the step-by-step browser scripts (resume.mjs,
// sse.mjs): Chromium started with a tap script in every page, commands
// read one line at a time from stdin and run in order, and the end: one
// last drain of what the page collected, a screenshot, the browser
// closed, the whole result written to OUT_DIR/NAME.json (a big stdout
// write may not be flushed before exit) and a short summary on stdout for
// the Python test; exit 0 when ok.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// state(): { result, page, browser, drain } at the moment of finishing.
// Returns finish(err) and starts the 90 s watchdog that calls it.
export function finisher(outDir, name, state) {
  let watchdog;
  async function finish(err) {
    clearTimeout(watchdog);
    const { page, browser, drain } = state();
    if (page) await Promise.race([drain(), new Promise(r => setTimeout(r, 3000))]);
    const result = state().result;
    result.ok = !err && result.problems.length === 0;
    if (err) result.error = String(err && err.stack || err);
    try { if (page) await page.screenshot({ path: path.join(outDir, name + '.png') }); } catch (e) { /* gone */ }
    try { if (browser) await browser.close(); } catch (e) { /* already gone */ }
    const file = path.join(outDir, name + '.json');
    fs.writeFileSync(file, JSON.stringify(result));
    console.log(JSON.stringify({ ok: result.ok, file, error: result.error, problems: result.problems }));
    process.exit(result.ok ? 0 : 1);
  }
  watchdog = setTimeout(() => finish(new Error('browser script exceeded 90 s')), 90000);
  return finish;
}

// Starts Chromium with tapPage in every page, hands the browser and page
// to opened(), passes the page's console errors to onConsoleError(text,
// url) and its exceptions to problems, then runs command(line) for each
// line of stdin, one at a time. Any failure goes to finish.
export async function start(usage, tapPage, opened, onConsoleError, problems, command, finish) {
  try {
    const [pageUrl, outDir, name] = process.argv.slice(2);
    if (!pageUrl || !outDir || !name) throw new Error(usage);
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20000 });
    const context = await browser.newContext({ viewport: { width: 900, height: 500 } });
    await context.addInitScript(tapPage);
    const page = await context.newPage();
    opened(browser, page);
    page.on('console', m => { if (m.type() === 'error') onConsoleError(m.text(), (m.location() || {}).url || ''); });
    page.on('pageerror', e => problems.push('exception: ' + e.message));
    const rl = readline.createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    rl.on('line', line => { chain = chain.then(() => command(line)).catch(e => finish(e)); });
    rl.on('close', () => { chain = chain.then(() => finish(new Error('stdin closed before finish'))); });
  } catch (e) {
    await finish(e);
  }
}
