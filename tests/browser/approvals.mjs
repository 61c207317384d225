// Decides approvals in serve's console, in headless Chromium (Debian's /usr/bin/chromium)
// over the DevTools protocol with playwright-core, for tests/it/approvals_e2e.rs.
//
//   node tests/browser/approvals.mjs URL?token=TOKEN
//
// Talks to the Rust test line by line. Logs in with the token URL (the cookie), prints
// {"ready":true} once the page's event stream is open. Then for each line on stdin:
//   "approve"      waits for a pending approval in the bar, clicks Approve;
//   "deny REASON"  waits for a pending approval in the bar, types REASON, clicks Deny;
// and prints {"clicked": ..., "id", "summary", "at_ms": wall clock of the click};
//   "open SESSION" opens the session's view; "pause MESSAGE", "resume" and "note TEXT"
//   use its controls and print {"clicked": ...} once the view shows the change.
// "done" prints {"result": {"console": [...]}}: every console message and page error.

import { newPage, run, say } from './driver.mjs';
import { createInterface } from 'node:readline';

const url = process.argv[2];
if (!url) {
  console.error('usage: approvals.mjs URL?token=TOKEN');
  process.exit(2);
}
await run(async () => {
  const page = await newPage('console');
  await page.goto(url);
  await page.waitForSelector('#conn[data-state="open"]', { timeout: 15000 });
  say({ ready: true, location: page.url() });

  const seen = new Set();
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, ...rest] = line.trim().split(' ');
    if (cmd === 'done') break;
    const text = rest.join(' ');
    if (cmd === 'open') {
      await page.evaluate(id => { location.hash = `#/session/${encodeURIComponent(id)}`; }, text);
      await page.waitForSelector('#session-view:not([hidden])', { timeout: 10000 });
      say({ clicked: cmd });
      continue;
    }
    if (cmd === 'pause' || cmd === 'resume') {
      if (cmd === 'pause') await page.fill('#pause-msg', text);
      await page.click('#pause');
      await page.waitForSelector('#s-paused', { state: cmd === 'pause' ? 'visible' : 'hidden', timeout: 5000 });
      say({ clicked: cmd, info: await page.textContent('#control-info') });
      continue;
    }
    if (cmd === 'note') {
      await page.fill('#note-text', text);
      await page.click('#note-form button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('control-info').textContent.includes('1 note'), null, { timeout: 5000 });
      say({ clicked: cmd, info: await page.textContent('#control-info') });
      continue;
    }
    // The first approval in the bar this driver has not decided yet.
    const box = await page.waitForFunction(done => {
      for (const a of document.querySelectorAll('#approvals [data-approval]')) {
        if (!done.includes(a.dataset.approval)) return a.dataset.approval;
      }
      return null;
    }, [...seen], { timeout: 10000 });
    const id = await box.jsonValue();
    seen.add(id);
    const item = page.locator(`#approvals [data-approval="${id}"]`);
    const summary = await item.locator('.summary').textContent();
    if (cmd === 'deny') await item.locator('input.reason').fill(text);
    const button = item.locator(`button[data-action="${cmd === 'deny' ? 'deny' : 'approve'}"]`);
    const at_ms = Date.now();
    await button.click();
    say({ clicked: cmd, id, summary, at_ms });
    // Decided: it leaves the bar.
    await page.waitForSelector(`#approvals [data-approval="${id}"]`, { state: 'detached', timeout: 5000 });
  }
});
