// The session view of serve's console under load, in headless Chromium (driver of bench/console.sh).
//
//   node bench/console.mjs --url http://127.0.0.1:PORT --projects DIR --gen bench/console_session.py \
//       --session small=ID:CALLS --session large=ID:CALLS [--reps 3] [--live 500] [--keys 20] [--profile]
//
// The sessions must already be written (bench/console_session.py); this waits until the
// daemon counts their calls. Then, per session, the same measurements, so that the first
// session is the baseline of the others in the same run (the machine is shared and noisy):
//
// * api: `GET /api/sessions/{id}/events` as the page asks for it (`?limit=` when the
//   page's request has one, see PAGE_QUERY), and without parameters (all kept): bytes,
//   events, time to headers and to the body's end (median of 5, loopback);
// * open: a fresh page navigated to `#/session/ID`; in-page times (performance.now(), from
//   navigation start) until the latest call's row is there ("open") and until every kept
//   call's row is ("all"; when the view shows a "Load earlier" control, it is pressed
//   until the first kept call shows up: "all" then includes those presses). CPU split of
//   the open from the DevTools Performance domain (script, layout, style).
// * keys: per-key latency of k (the first jumps to the last row) and j: keydown to the
//   task after the next frame, in-page;
// * live (after all opens, `--reps` times in a row on the last page opened): M more calls
//   appended to the transcript with the page at the tail: time until
//   the stream (a separate `/api/events` client) has the last call ("server") and until its
//   row is on the page ("shown");
// * heap: JS heap after a forced GC, and DOM nodes, after the live appends.
//
// Prints a table (median of --reps; ratios to the first session) and one JSON line.

import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const { chromium } = await import(pathToFileURL(join(ROOT, 'tests/browser/node_modules/playwright-core/index.mjs')));

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i < 0 ? dflt : args[i + 1]; };
const url = opt('--url');
const projects = opt('--projects');
const gen = opt('--gen', join(ROOT, 'bench/console_session.py'));
const reps = Number(opt('--reps', 3));
const liveCalls = Number(opt('--live', 500));
const keyPresses = Number(opt('--keys', 20));
const profile = args.includes('--profile');
const sessions = args.flatMap((a, i) => (a === '--session' ? [args[i + 1]] : [])).map(s => {
  const [label, rest] = s.split('=');
  const [id, calls] = rest.split(':');
  return { label, id, calls: Number(calls) };
});
if (!url || !projects || sessions.length < 1) {
  console.error('usage: console.mjs --url URL --projects DIR --session LABEL=ID:CALLS ... [--reps N] [--live M] [--keys K]');
  process.exit(2);
}

const median = xs => { const s = xs.filter(x => x != null).sort((a, b) => a - b); return s.length ? s[(s.length - 1) >> 1] : null; };
const sleep = ms => new Promise(r => setTimeout(r, ms));
const messages = [];

async function getJson(path) {
  const r = await fetch(url + path);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

/** Wait until the daemon counts `calls` tool calls for the session. */
async function waitCalls(id, calls, timeoutMs = 120000) {
  const t0 = Date.now();
  for (;;) {
    const s = await getJson(`/api/sessions/${id}`).catch(() => null);
    if (s && s.tool_calls >= calls) return s;
    if (Date.now() - t0 > timeoutMs) throw new Error(`session ${id}: ${s?.tool_calls} of ${calls} calls after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** One timed GET: bytes, ms to headers, ms to the end of the body. */
async function timedGet(path) {
  const t0 = performance.now();
  const r = await fetch(url + path);
  const th = performance.now();
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, bytes: body.length, headersMs: th - t0, totalMs: performance.now() - t0, body };
}

async function api(path) {
  const runs = [];
  for (let i = 0; i < 5; i++) runs.push(await timedGet(path));
  const last = JSON.parse(runs.at(-1).body);
  return {
    path, status: runs[0].status, bytes: runs[0].bytes, events: last.events?.length ?? null, truncated: last.truncated ?? null, more: last.more ?? null,
    headers_ms: median(runs.map(r => r.headersMs)), total_ms: median(runs.map(r => r.totalMs)),
  };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true });

async function newPage(label, want) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // In every document of this context: note when the latest and the first kept call's
  // rows are in the timeline, checked once per frame (cheap: two attribute selectors).
  await ctx.addInitScript(w => {
    const marks = (window.__bench = {});
    const tick = () => {
      const tl = document.getElementById('timeline');
      if (tl && tl.dataset.loaded === 'true') {
        if (marks.open == null && tl.querySelector(`li[data-event="${w.last}"]`)) {
          marks.open = performance.now();
          marks.rowsAtOpen = tl.childElementCount;
        }
        if (marks.all == null && tl.querySelector(`li[data-event="${w.first}"]`)) marks.all = performance.now();
      }
      if (marks.open == null || marks.all == null) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, want);
  const page = await ctx.newPage();
  page.on('console', m => messages.push({ page: label, type: m.type(), text: m.text() }));
  page.on('pageerror', e => messages.push({ page: label, type: 'pageerror', text: String(e) }));
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable', { timeDomain: 'timeTicks' });
  return { ctx, page, cdp };
}

async function metrics(cdp) {
  const { metrics: m } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(m.map(x => [x.name, x.value]));
}

/** The kept history's first and latest tool_use events (what the open waits for). */
async function keptCalls(id) {
  const h = await getJson(`/api/sessions/${id}/events`);
  const calls = h.events.filter(e => e.type === 'tool_use');
  return { first: calls[0].id, last: calls.at(-1).id, calls: calls.length, events: h.events.length };
}

async function topFunctions(cdp, run) {
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  await run();
  const { profile: p } = await cdp.send('Profiler.stop');
  const dt = (p.endTime - p.startTime) / 1000 / Math.max(1, p.samples.length);
  const self = new Map();
  for (const n of p.nodes) {
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) || 0) + n.hitCount * dt);
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, ms]) => ({ fn: k, self_ms: Math.round(ms) }));
}

/** Open the session in a fresh page; the in-page times of its latest and its first call. */
async function open(s, want, withProfile) {
  const p = await newPage(`${s.label}-open`, want);
  const before = await metrics(p.cdp);
  const go = async () => {
    await p.page.goto(`${url}/#/session/${encodeURIComponent(s.id)}`);
    await p.page.waitForFunction(() => window.__bench.open != null, null, { timeout: 120000, polling: 50 });
  };
  const top = withProfile ? await topFunctions(p.cdp, go) : (await go(), null);
  const opened = await p.page.evaluate(() => ({ ...window.__bench }));
  // Everything kept: by itself, or by pressing the view's "Load earlier" control.
  let presses = 0;
  for (let i = 0; i < 100; i++) {
    if (await p.page.evaluate(() => window.__bench.all != null)) break;
    const more = await p.page.$('#load-earlier:not([hidden]):not([disabled])');
    if (more) {
      const rows = await p.page.evaluate(() => document.getElementById('timeline').childElementCount);
      await more.evaluate(b => b.click()); // not a scroll to it: scrolling up to it loads by itself
      presses++;
      await p.page.waitForFunction(n => document.getElementById('timeline').childElementCount > n || window.__bench.all != null,
        rows, { timeout: 30000, polling: 'raf' });
    } else {
      await sleep(50);
    }
  }
  const marks = await p.page.evaluate(() => ({ ...window.__bench }));
  // What the timeline holds once all is shown: rows in event order, each kept call once.
  const check = await p.page.evaluate(() => {
    const rows = [...document.querySelectorAll('#timeline > li')];
    const ids = rows.map(r => Number(r.dataset.event));
    return {
      in_order: ids.every((x, i) => i === 0 || ids[i - 1] < x),
      calls_shown: rows.filter(r => r.dataset.kind === 'tool_use').length,
      running: rows.filter(r => r.classList.contains('running')).length,
      results_alone: rows.filter(r => r.dataset.kind === 'tool_result').length,
    };
  });
  const after = await metrics(p.cdp);
  const d = k => Math.round((after[k] - before[k]) * 1000);
  return {
    page: p, open_ms: opened.open, rows_at_open: opened.rowsAtOpen, all_ms: marks.all, presses,
    ...check,
    script_ms: d('ScriptDuration'), layout_ms: d('LayoutDuration'), style_ms: d('RecalcStyleDuration'), task_ms: d('TaskDuration'),
    top,
  };
}

/** Per-key latency: keydown to the first task after the next frame, in the page. */
async function keys(page) {
  await page.evaluate(() => {
    window.__keys = [];
    document.addEventListener('keydown', () => {
      const t0 = performance.now();
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => window.__keys.push(performance.now() - t0);
        ch.port2.postMessage(0);
      });
    }, { capture: true });
  });
  let n = 0;
  for (const key of ['k', 'j']) {
    for (let i = 0; i < keyPresses; i++) {
      await page.keyboard.press(key);
      n++;
      await page.waitForFunction(c => window.__keys.length >= c, n, { timeout: 10000, polling: 'raf' });
    }
  }
  const lat = await page.evaluate(() => window.__keys);
  return { key_ms: median(lat), key_max_ms: Math.max(...lat) };
}

/** Append `liveCalls` calls; times until the stream has the last one and until its row shows. */
async function live(s, page, start) {
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  const lastTool = `toolu_${s.id.replace(/-/g, '').slice(0, 8)}${String(start + liveCalls - 1).padStart(16, '0')}m`;
  const rowsBefore = await page.evaluate(() => document.querySelectorAll('#timeline > li[data-kind="tool_use"]').length);
  // A separate stream client: when the daemon has sent the last call.
  const ac = new AbortController();
  const streamed = (async () => {
    const r = await fetch(`${url}/api/events?session=${encodeURIComponent(s.id)}&type=tool_use`, { signal: ac.signal });
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      if (buf.includes(lastTool)) return Date.now();
      buf = buf.slice(-200);
    }
    return null;
  })().catch(() => null);
  await sleep(300);
  execFileSync('python3', [gen, '--projects', projects, '--session', s.id, '--calls', String(liveCalls), '--start', String(start)]);
  const t0 = Date.now();
  // Rows are only added for calls (their results update them): all in once the count is reached.
  const shownAt = await (await page.waitForFunction(n => (
    document.querySelectorAll('#timeline li[data-kind="tool_use"]').length >= n ? Date.now() : false
  ), rowsBefore + liveCalls, { timeout: 120000, polling: 'raf' })).jsonValue();
  const serverAt = await Promise.race([streamed, sleep(5000).then(() => null)]);
  ac.abort();
  return { live_server_ms: serverAt && serverAt - t0, live_shown_ms: shownAt - t0 };
}

async function heap(p) {
  await p.cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await p.cdp.send('Runtime.getHeapUsage');
  const m = await metrics(p.cdp);
  return { heap_mib: usedSize / 1048576, dom_nodes: m.Nodes };
}

const results = {};
try {
  for (const s of sessions) {
    await waitCalls(s.id, s.calls);
    s.next = s.calls + 10; // live calls get numbers after the generated ones
    const page = (await api(`/api/sessions/${s.id}/events?limit=1000`));
    results[s.label] = {
      calls: s.calls, ...await keptCalls(s.id).then(w => ({ kept_events: w.events, kept_calls: w.calls })),
      api_all: await api(`/api/sessions/${s.id}/events`),
      // A daemon that pages says `more`; an older one answers everything.
      api_page: page.status === 200 && page.more != null ? page : null,
      runs: [],
    };
  }
  // Opens and keys first (the sessions as written), then the live appends, `reps` in a
  // row on the last open page of each session (each run adds `liveCalls` calls).
  const last = {};
  for (let r = 0; r < reps; r++) {
    for (const s of sessions) {
      const want = await keptCalls(s.id);
      const o = await open(s, want, profile && r === 0 && s === sessions.at(-1));
      const k = await keys(o.page.page);
      const { page: _, top, ...rest } = o;
      if (top) results[s.label].profile = top;
      results[s.label].runs.push({ ...rest, ...k });
      if (r === reps - 1) last[s.label] = o.page;
      else await o.page.ctx.close();
    }
  }
  for (const s of sessions) {
    const p = last[s.label];
    for (let r = 0; r < reps; r++) {
      Object.assign(results[s.label].runs[r], await live(s, p.page, s.next));
      s.next += liveCalls;
    }
    Object.assign(results[s.label].runs[reps - 1], await heap(p));
    await p.ctx.close();
  }
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
}
await browser.close();

// ---- summary
const FIELDS = [
  ['open_ms', 'open: latest call shown (ms)'],
  ['all_ms', 'open: all kept calls shown (ms)'],
  ['rows_at_open', 'rows at open'],
  ['presses', '"Load earlier" presses'],
  ['calls_shown', 'calls shown after all (= calls kept)'],
  ['results_alone', 'results shown without their call'],
  ['script_ms', 'open+all: script (ms)'],
  ['layout_ms', 'open+all: layout (ms)'],
  ['style_ms', 'open+all: style (ms)'],
  ['key_ms', 'key j/k, median (ms)'],
  ['key_max_ms', 'key j/k, max (ms)'],
  ['live_server_ms', `live +${liveCalls} calls: streamed (ms)`],
  ['live_shown_ms', `live +${liveCalls} calls: shown (ms)`],
  ['heap_mib', 'JS heap after GC (MiB)'],
  ['dom_nodes', 'DOM nodes'],
];
const summary = {};
for (const [label, r] of Object.entries(results)) {
  summary[label] = { calls: r.calls, kept_events: r.kept_events, kept_calls: r.kept_calls };
  for (const [k] of FIELDS) summary[label][k] = median(r.runs.map(x => x[k]));
  for (const [name, a] of [['api_all', r.api_all], ['api_page', r.api_page]]) {
    if (!a) continue;
    Object.assign(summary[label], { [`${name}_bytes`]: a.bytes, [`${name}_events`]: a.events, [`${name}_headers_ms`]: a.headers_ms, [`${name}_total_ms`]: a.total_ms });
  }
}
const labels = Object.keys(summary);
const rows = [
  ['calls written', 'calls'], ['events kept (history)', 'kept_events'], ['calls kept', 'kept_calls'],
  ['/events bytes', 'api_all_bytes'], ['/events server+transfer (ms)', 'api_all_total_ms'], ['/events time to headers (ms)', 'api_all_headers_ms'],
  ['/events?limit=1000 bytes', 'api_page_bytes'], ['/events?limit=1000 (ms)', 'api_page_total_ms'],
  ...FIELDS.map(([k, t]) => [t, k]),
];
const fmt = v => (v == null ? '—' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1)) : String(v));
const base = labels[0];
const head = ['measure', ...labels, ...labels.slice(1).map(l => `${l}/${base}`)];
const table = [head, head.map(() => '---')];
for (const [title, k] of rows) {
  if (labels.every(l => summary[l][k] == null)) continue;
  const vals = labels.map(l => summary[l][k]);
  const ratios = labels.slice(1).map(l => (summary[l][k] != null && summary[base][k] ? (summary[l][k] / summary[base][k]).toFixed(2) : '—'));
  table.push([title, ...vals.map(fmt), ...ratios]);
}
console.log(`\nconsole session view, median of ${reps} (live: +${liveCalls} calls per run)`);
for (const r of table) console.log(`| ${r.join(' | ')} |`);
for (const [label, r] of Object.entries(results)) {
  if (r.profile) {
    console.log(`\nprofile of the ${label} open (self time, top functions):`);
    for (const f of r.profile) console.log(`  ${String(f.self_ms).padStart(6)} ms  ${f.fn}`);
  }
}
const disorder = Object.entries(results).flatMap(([l, r]) => r.runs.filter(x => !x.in_order).map(() => l));
console.log(`\ntimeline rows in event order: ${disorder.length ? `NO (${disorder.join(', ')})` : 'yes, every run'}`);
const problems = messages.filter(m => m.type === 'error' || m.type === 'pageerror' || m.type === 'warning');
console.log(`\nbrowser console: ${messages.length} messages, ${problems.length} errors/warnings`);
for (const m of problems.slice(0, 10)) console.log(`  [${m.page}] ${m.type}: ${m.text}`);
console.log(JSON.stringify({ bench: 'console', reps, live_calls: liveCalls, summary, results, console: messages }));
if (problems.length || disorder.length) process.exitCode = 1;
