// Small helpers shared by the console's modules: DOM building, number and time formats, toasts.
// Everything the page shows goes through textContent (never innerHTML): transcript text is data.

/** An element with attributes (`class`, `data-*`, `on*` handlers) and children (nodes or text). */
export function el(tag, attrs = {}, ...children) {
  const e = tag === 'svg' || SVG_TAGS.has(tag)
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const SVG_TAGS = new Set(['polyline', 'line', 'rect', 'circle', 'path', 'text', 'g', 'title']);

/** 1234 → "1.2k", 1234567 → "1.2M". */
export function fmtNum(n) {
  n = Number(n) || 0;
  if (n < 1000) return String(Math.round(n));
  if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + 'k';
  if (n < 1e9) return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + 'M';
  return (n / 1e9).toFixed(1) + 'G';
}

/** USD with cents, or more digits below a cent. */
export function fmtCost(usd) {
  usd = Number(usd) || 0;
  if (usd === 0) return '$0';
  if (usd < 0.01) return '$' + usd.toFixed(4);
  return '$' + usd.toFixed(2);
}

/** Milliseconds → "850ms", "12s", "3m 04s", "2h 05m". */
export function fmtDuration(ms) {
  ms = Math.max(0, Number(ms) || 0);
  if (ms < 1000) return Math.round(ms) + 'ms';
  const s = Math.floor(ms / 1000);
  if (s < 60) return (ms / 1000).toFixed(s < 10 ? 1 : 0) + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Epoch ms → local "HH:MM:SS". */
export function fmtTime(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map(x => String(x).padStart(2, '0')).join(':');
}

/** Epoch ms → "5s ago", "3m ago", or the date for older. */
export function fmtAgo(ms, now = Date.now()) {
  const d = now - ms;
  if (d < 0) return 'now';
  if (d < 48 * 3600e3) return fmtDuration(d) + ' ago';
  return new Date(ms).toLocaleDateString();
}

/** The last path component of a folder, or the whole string. */
export function short(s, n = 12) {
  if (!s) return '';
  return s.length > n ? s.slice(0, n) : s;
}

/** Show a message for a few seconds; `kind` is `error` or `ok`. */
export function toast(message, kind = 'error') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', text: message });
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3000);
}

/** Run `fn` at most once per animation frame, however often it is asked for. */
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}
