// finish.mjs - how the step-by-step browser scripts (resume.mjs, sse.mjs)
// end: one last drain of what the page collected, a screenshot, the
// browser closed, the whole result written to OUT_DIR/NAME.json (a big
// stdout write may not be flushed before exit) and a short summary on
// stdout for the Python test; exit 0 when ok.
import fs from 'node:fs';
import path from 'node:path';

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
