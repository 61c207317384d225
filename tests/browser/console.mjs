// Drives serve's console in headless Chromium (Debian's /usr/bin/chromium) over the
// DevTools protocol with playwright-core, for tests/it/console.rs.
//
//   node tests/browser/console.mjs URL --session ID --expect-tools N --screenshots DIR
//
// Talks to the Rust test line by line: prints {"ready":true} once the page's event
// stream is open, then waits for "go" on stdin (the test has just written the session's
// first line) and times how long the session takes to appear in the sessions view; waits
// for "done" (every line written), then opens the session with the keyboard, reads its
// timeline, takes the screenshots (1280×800, light and dark, both views), opens the
// session again in a fresh page (its past from /api/sessions/{id}/events), and prints
// {"result": {...}}, with what the context composition chart shows in each page. Every
// console message and page error is reported; the test decides.

import { newPage, run, say } from './driver.mjs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const args = process.argv.slice(2);
const url = args[0];
const opt = name => { const i = args.indexOf(name); return i < 0 ? undefined : args[i + 1]; };
const session = opt('--session');
const expectTools = Number(opt('--expect-tools') || 0);
const shots = opt('--screenshots');
if (!url || !session || !shots) {
  console.error('usage: console.mjs URL --session ID --expect-tools N --screenshots DIR');
  process.exit(2);
}

const lines = createInterface({ input: process.stdin });
const waiting = [];
const arrived = [];
lines.on('line', l => { const w = waiting.shift(); if (w) w(l.trim()); else arrived.push(l.trim()); });
const nextLine = () => new Promise(res => { const l = arrived.shift(); if (l !== undefined) res(l); else waiting.push(res); });
async function expectLine(word) {
  const l = await nextLine();
  if (l !== word) throw new Error(`expected "${word}" on stdin, got "${l}"`);
}

/** Screenshots of `page`, light and dark, and the body's background in each (into `result`). */
async function shoot(page, name, result) {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.waitForTimeout(100);
    await page.screenshot({ path: join(shots, `${name}-${scheme}.png`) });
    (result.backgrounds ||= {})[`${name}-${scheme}`] = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** What the timeline shows: tool calls (names, in order), errors, spawns, lanes. */
async function readTimeline(page) {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('#timeline > li')];
    const tools = rows.filter(r => r.dataset.kind === 'tool_use').map(r => r.dataset.tool);
    return {
      rows: rows.length,
      tools,
      tool_errors: rows.filter(r => (r.dataset.kind === 'tool_use' || r.dataset.kind === 'tool_result') && r.classList.contains('error')).length,
      error_names: rows.filter(r => r.dataset.kind === 'tool_use' && r.classList.contains('error')).map(r => r.dataset.tool),
      spawns: rows.filter(r => r.dataset.kind === 'agent_spawn').length,
      lanes: [...new Set(rows.map(r => r.dataset.agent).filter(Boolean))].sort(),
      prompts: rows.filter(r => r.dataset.kind === 'prompt').length,
    };
  });
}

/** The context composition chart: calls, totals by source, legend and columns drawn. */
async function readComposition(page) {
  return page.evaluate(() => {
    const f = document.getElementById('composition');
    return {
      calls: Number(f.dataset.calls),
      sources: JSON.parse(f.dataset.sources || '{}'),
      legend: [...f.querySelectorAll('#comp-legend li')].map(li => [li.dataset.group, Number(li.dataset.tokens)]),
      rects: f.querySelectorAll('#comp-chart rect').length,
      label: document.getElementById('comp-label').textContent,
    };
  });
}

async function waitTools(page) {
  const sel = '#timeline > li[data-kind="tool_use"]';
  await page.waitForFunction(([s, n]) => document.querySelectorAll(s).length >= n, [sel, expectTools], { timeout: 15000 })
    .catch(() => {});
  // Long enough for a duplicate or a late row to show up too.
  await page.waitForTimeout(500);
}

await run(async result => {
  const page = await newPage('live');
  await page.goto(url);
  await page.waitForSelector('#conn[data-state="open"]', { timeout: 15000 });
  say({ ready: true });

  await expectLine('go');
  const t0 = Date.now();
  const row = `#sessions tbody tr[data-id="${session}"]`;
  await page.waitForSelector(row, { timeout: 5000 });
  result.appeared_ms = Date.now() - t0;

  await expectLine('done');
  await page.waitForFunction(([r, n]) => document.querySelector(`${r} [data-col="tools"]`)?.textContent === String(n),
    [row, expectTools], { timeout: 15000 }).catch(() => {});
  result.row = await page.evaluate(r => {
    const get = c => document.querySelector(`${r} [data-col="${c}"]`)?.textContent;
    return { tools: Number(get('tools')), errors: Number(get('errors')), agents: Number(get('agents')) };
  }, row);

  // Search hides what does not match, and shows it again.
  await page.keyboard.press('/');
  await page.keyboard.type('no-such-session-anywhere');
  // The list re-renders on the next animation frame: wait for it (a loaded machine is slow).
  const rows = n => page.waitForFunction(([r, n]) => document.querySelectorAll(r).length === n, [row, n], { timeout: 2000 })
    .then(() => true, () => false);
  result.search_hides = await rows(0);
  await page.fill('#search', '');
  await page.keyboard.press('Escape');
  result.search_restores = await rows(1);
  // Readable at 1280×800: the table fits without its scroller.
  result.table_overflow = await page.evaluate(() => {
    const w = document.querySelector('.table-wrap');
    return w.scrollWidth - w.clientWidth;
  });
  await shoot(page, 'sessions', result);

  // Keyboard: select the first row, open it.
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#session-view:not([hidden]) #timeline[data-loaded="true"]', { timeout: 10000 });
  result.hash = await page.evaluate(() => location.hash);
  await waitTools(page);
  result.live = await readTimeline(page);
  result.live_composition = await readComposition(page);
  result.server_history = await page.evaluate(async id => {
    const h = await (await fetch(`/api/sessions/${encodeURIComponent(id)}/events`)).json();
    return { events: h.events.length, tool_use: h.events.filter(e => e.type === 'tool_use').length, truncated: h.truncated, first: h.events[0]?.id, last: h.last_event_id };
  }, session);
  result.stream = await page.evaluate(() => ({ ...document.body.dataset }));
  await page.evaluate(() => window.scrollTo(0, 0));
  await shoot(page, 'session', result);
  // `t` switches the theme away from the system's (light here), and back.
  const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const before = await bg();
  await page.keyboard.press('t');
  result.toggle_changes_theme = (await bg()) !== before;
  await page.keyboard.press('t');
  result.toggle_restores_theme = (await bg()) === before;
  await page.keyboard.press('Escape');
  result.back_to_list = await page.waitForSelector('#sessions-view:not([hidden])', { timeout: 2000 }).then(() => true, () => false);

  // A page opened now: the timeline's past from the server's history.
  const fresh = await newPage('fresh');
  await fresh.goto(`${url}#/session/${encodeURIComponent(session)}`);
  await fresh.waitForSelector('#timeline[data-loaded="true"]', { timeout: 10000 });
  await waitTools(fresh);
  result.history = await readTimeline(fresh);
  result.history_composition = await readComposition(fresh);
  // A small screen: nothing wider than the viewport but the table's own scroller.
  await fresh.setViewportSize({ width: 390, height: 844 });
  await fresh.waitForTimeout(100);
  result.phone_overflow = await fresh.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
});
