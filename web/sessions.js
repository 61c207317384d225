// The sessions view: one table row per session, kept by id and updated in place (a
// change redraws its row only, at most once per frame); filter by project and state,
// search, and a keyboard selection.

import { el, fmtCost, fmtDuration, fmtNum, perFrame } from './util.js';

const STATE_ORDER = { active: 0, idle: 1, ended: 2 };

export class SessionsView {
  constructor(store, open) {
    this.store = store;
    this.open = open;
    this.tbody = document.querySelector('#sessions tbody');
    this.search = document.getElementById('search');
    this.project = document.getElementById('f-project');
    this.state = document.getElementById('f-state');
    this.count = document.getElementById('count');
    this.empty = document.getElementById('empty');
    this.totals = document.getElementById('totals');
    this.rows = new Map();
    this.dirty = new Set();
    this.order = [];
    this.selected = null;
    this.projects = new Set();
    this.schedule = perFrame(() => this.flush());
    this.all = true;
    store.addEventListener('sessions', () => { this.all = true; this.schedule(); });
    store.addEventListener('session', ev => { this.dirty.add(ev.detail.id); this.schedule(); });
    for (const input of [this.search, this.project, this.state]) {
      input.addEventListener('input', () => { this.all = true; this.schedule(); });
    }
    // Ages of pending calls and durations of active sessions move with the clock.
    setInterval(() => { for (const s of this.store.sessions.values()) if (s.pending.size) this.dirty.add(s.id); this.schedule(); }, 1000);
  }

  visible(s) {
    const q = this.search.value.trim().toLowerCase();
    if (this.project.value && s.project !== this.project.value) return false;
    if (this.state.value && s.state !== this.state.value) return false;
    if (!q) return true;
    return [s.id, s.project, s.git_branch, s.cwd, s.last_model, ...(s.models || []), s.state]
      .some(v => v && String(v).toLowerCase().includes(q));
  }

  flush() {
    const sessions = this.store.sessions;
    for (const s of sessions.values()) {
      if (s.project && !this.projects.has(s.project)) {
        this.projects.add(s.project);
        const opts = [...this.projects].sort();
        const keep = this.project.value;
        this.project.replaceChildren(el('option', { value: '', text: 'All projects' }),
          ...opts.map(p => el('option', { value: p, text: p })));
        this.project.value = keep;
      }
    }
    const ids = this.all ? [...sessions.keys()] : [...this.dirty];
    for (const id of ids) {
      const s = sessions.get(id);
      if (!s) continue;
      let row = this.rows.get(id);
      if (!row) {
        row = el('tr', { 'data-id': id, tabindex: '-1' });
        row.addEventListener('click', () => this.open(id));
        this.rows.set(id, row);
      }
      this.fill(row, s);
    }
    this.dirty.clear();
    this.all = false;
    // Live first, then latest activity; rows move only when the order changed.
    const order = [...sessions.values()]
      .filter(s => this.visible(s))
      .sort((a, b) => (STATE_ORDER[a.state] - STATE_ORDER[b.state]) || (b.last_ms - a.last_ms))
      .map(s => s.id);
    if (order.length !== this.order.length || order.some((id, i) => id !== this.order[i])) {
      this.tbody.replaceChildren(...order.map(id => this.rows.get(id)));
      this.order = order;
    }
    if (this.selected && !order.includes(this.selected)) this.selected = null;
    this.markSelected();
    this.empty.hidden = sessions.size > 0;
    const live = [...sessions.values()].filter(s => s.state !== 'ended').length;
    this.count.textContent = `${order.length} of ${sessions.size} sessions · ${live} live`;
    let cost = 0;
    for (const s of sessions.values()) cost += s.cost_usd || 0;
    this.totals.textContent = `${live} live · ${fmtCost(cost)}`;
  }

  fill(row, s) {
    const tokens = s.tokens ? s.tokens.input + s.tokens.output + s.tokens.cache_read + s.tokens.cache_creation : 0;
    const util = Math.min(1, s.context_utilization || 0);
    const fill = el('span', { class: 'fill' + (util > 0.85 ? ' hot' : util > 0.6 ? ' warm' : '') });
    fill.style.width = `${(util * 100).toFixed(1)}%`;
    let oldest = null;
    for (const p of s.pending.values()) if (oldest === null || p.ts < oldest.ts) oldest = p;
    const now = Date.now();
    const duration = s.state === 'active' && s.first_ms ? Math.max(s.duration_ms, now - s.first_ms) : s.duration_ms;
    const model = s.last_model || (s.models || []).at(-1) || '';
    row.className = `state-${s.state}`;
    row.replaceChildren(
      el('td', { class: 'proj' }, el('b', { text: s.project || '—' }), el('span', { class: 'mono muted id', text: ' ' + s.id.slice(0, 8) })),
      el('td', { class: 'opt mono branch', title: s.git_branch || '', text: s.git_branch || '' }),
      el('td', { class: 'opt', title: model, text: model.replace(/^claude-/, '').replace(/-\d{8}$/, '') }),
      el('td', {}, el('span', { class: `state ${s.state}`, text: s.state }),
        s.paused ? el('span', { class: 'badge paused', text: 'paused' }) : null,
        s.approvals ? el('span', { class: 'badge approve', text: `${s.approvals} to approve` }) : null),
      el('td', { class: 'num', text: fmtDuration(duration) }),
      el('td', { class: 'num opt', 'data-col': 'prompts', text: s.prompts }),
      el('td', { class: 'num', 'data-col': 'tools', text: s.tool_calls }),
      el('td', { class: 'num' + (s.tool_errors + s.api_errors ? ' err' : ''), 'data-col': 'errors', text: s.tool_errors + s.api_errors }),
      el('td', { class: 'num opt', text: fmtNum(tokens) }),
      el('td', { class: 'num', text: fmtCost(s.cost_usd) }),
      el('td', { class: 'ctx', title: `${fmtNum(s.context_tokens)} of ${fmtNum(s.context_window)} tokens` },
        el('span', { class: 'bar' }, fill), el('span', { class: 'muted small', text: ` ${Math.round(util * 100)}%` })),
      el('td', { 'data-col': 'pending' }, oldest
        ? el('span', { class: 'pending', text: `${s.pending.size} · ${oldest.name} ${fmtDuration(now - oldest.ts)}` })
        : ''),
      el('td', { class: 'num opt', 'data-col': 'agents', text: s.subagents }),
    );
  }

  markSelected() {
    for (const [id, row] of this.rows) row.classList.toggle('selected', id === this.selected);
  }

  /** Move the selection by `d` rows (j/k, arrows). */
  move(d) {
    if (!this.order.length) return;
    const i = this.order.indexOf(this.selected);
    const next = i < 0 ? (d > 0 ? 0 : this.order.length - 1) : Math.max(0, Math.min(this.order.length - 1, i + d));
    this.selected = this.order[next];
    this.markSelected();
    this.rows.get(this.selected)?.scrollIntoView({ block: 'nearest' });
  }

  openSelected() {
    if (this.selected) this.open(this.selected);
  }

  focusSearch() {
    this.search.focus();
    this.search.select();
  }
}
