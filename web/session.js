// The session view: a timeline of one session's events (prompts, replies, tool calls with
// their results and durations, sub-agent lanes, compactions, rule matches, approvals,
// pauses and notes), its numbers, a context-growth chart, a chart of what each main-chain
// call added to the context (by source), and the controls.
//
// Past events come from the server's per-session history joined with the page's own
// stream; new ones are appended as they arrive. Rendering is incremental: an event adds
// (or updates) its own row, batched once per frame, so thousands of events never redraw
// the list; rows off screen cost no layout (`content-visibility` in style.css). A long
// session opens with its latest PAGE events (what costs is building and laying out rows,
// see bench/console.sh); earlier pages are put above them by "Load earlier" (a button,
// scrolling up to it, or k on the first row). The numbers come from the server's session
// snapshot and the charts from all kept context events, so neither depends on the pages.

import { decisionButtons } from './control.js';
import { el, fmtCost, fmtDuration, fmtNum, fmtTime, perFrame } from './util.js';

const LANES = 6;
const CHART_W = 600;
const CHART_H = 120;
/** Events per page of history: the latest page opens the view, earlier ones on demand. */
const PAGE = 1000;

export class SessionView {
  constructor(store, approvals, controls) {
    this.store = store;
    this.approvals = approvals;
    this.controls = controls;
    this.list = document.getElementById('timeline');
    this.title = document.getElementById('s-title');
    this.stateBadge = document.getElementById('s-state');
    this.stats = document.getElementById('s-stats');
    this.notice = document.getElementById('s-notice');
    this.chart = document.getElementById('chart');
    this.chartLabel = document.getElementById('chart-label');
    this.comp = document.getElementById('composition');
    this.compChart = document.getElementById('comp-chart');
    this.compLegend = document.getElementById('comp-legend');
    this.compLabel = document.getElementById('comp-label');
    this.earlier = document.getElementById('load-earlier');
    this.earlier.addEventListener('click', () => this.loadEarlier());
    // Scrolling up to the button loads the page before (a scroll down never does).
    let lastY = window.scrollY;
    window.addEventListener('scroll', () => {
      const up = window.scrollY < lastY;
      lastY = window.scrollY;
      if (!up || !this.more || this.earlier.hidden) return;
      const r = this.earlier.getBoundingClientRect();
      if (r.bottom > 0 && r.top < window.innerHeight) this.loadEarlier();
    }, { passive: true });
    this.id = null;
    this.queue = [];
    this.flushSoon = perFrame(() => this.flush());
    this.drawSoon = perFrame(() => { this.drawChart(); this.drawStats(); });
    store.addEventListener('event', ev => {
      const e = ev.detail;
      if (this.id && e.session_id === this.id) { this.queue.push(e); this.flushSoon(); }
    });
    store.addEventListener('session', ev => { if (ev.detail.id === this.id) this.drawSoon(); });
    store.addEventListener('sessions', () => { if (this.id) this.drawSoon(); });
    store.addEventListener('reset', () => { if (this.id) this.open(this.id); });
    // The stream skipped events: what the open session missed is in the server's history.
    store.addEventListener('lagged', async () => {
      const id = this.id;
      if (!id || this.loading) return;
      const { events } = await this.store.history(id);
      if (id === this.id) { this.queue.push(...events); this.flushSoon(); }
    });
    setInterval(() => this.tickPending(), 1000);
    this.list.addEventListener('click', ev => {
      if (ev.target.closest('button, input, a')) return;
      ev.target.closest('li.ev')?.classList.toggle('unfolded');
    });
  }

  reset(id) {
    this.id = id;
    this.queue = [];
    this.seen = new Set();
    this.toolRows = new Map();
    this.approvalRows = new Map();
    this.lanes = new Map();
    /** Context sizes (event id → [ts, tokens]) and compactions (id → ts) of all kept events. */
    this.growth = new Map();
    this.compactions = new Map();
    /** What each main-chain call's growth was made of (event id → {source: tokens}). */
    this.parts = new Map();
    /** Results shown alone (their call is older than the loaded pages): tool_use_id → {row, e}. */
    this.orphans = new Map();
    /** The oldest event loaded from the history; earlier ones are kept when `more`. */
    this.oldest = null;
    this.more = false;
    this.earlier.hidden = true;
    /** Prompts are numbered once the timeline starts where the session did. */
    this.numbered = true;
    this.cost = 0;
    this.counts = { tools: 0, errors: 0, prompts: 0, spawns: 0 };
    this.content = false;
    this.loading = true;
    this.flushed = false;
    this.selected = -1;
    this.list.replaceChildren();
    this.notice.hidden = true;
  }

  async open(id) {
    this.reset(id);
    this.controls.open(id);
    this.title.textContent = id;
    this.drawStats();
    this.drawChart();
    const [latest, context] = await Promise.all([
      this.store.history(id, { limit: PAGE }),
      this.store.history(id, { type: 'context_growth,compaction' }),
    ]);
    if (this.id !== id) return;
    for (const e of context.events) this.contextPoint(e);
    const { events, truncated, more } = latest;
    this.loading = false;
    this.more = more;
    this.oldest = events.length ? events[0].id : null;
    this.numbered = !more;
    // Live events that arrived meanwhile join the history, once each, in order.
    this.queue = [...events, ...this.queue];
    if (truncated && !more) this.say(TRUNCATED);
    this.flush();
    this.earlier.hidden = !more;
  }

  /** Put the page before the oldest loaded event above the timeline, where the reader was. */
  async loadEarlier() {
    const id = this.id;
    if (!id || this.loading || this.loadingEarlier || !this.more) return;
    this.loadingEarlier = true;
    this.earlier.disabled = true;
    try {
      const { events, truncated, more } = await this.store.history(id, { limit: PAGE, before: this.oldest });
      if (id !== this.id) return;
      this.more = more && events.length > 0;
      if (events.length) this.oldest = events[0].id;
      const rows = this.list.children;
      const selected = rows[this.selected];
      // Replies of this page must not take the place of the latest ones (live tokens go there).
      const lastReply = this.lastReply;
      this.lastReply = new Map();
      const frag = document.createDocumentFragment();
      for (const e of events) {
        if (this.seen.has(e.id)) continue;
        this.seen.add(e.id);
        const row = this.add(e);
        if (row) frag.append(row);
      }
      this.lastReply = lastReply;
      const first = this.list.firstElementChild;
      const top = first?.getBoundingClientRect().top;
      this.list.prepend(frag);
      if (first) window.scrollBy(0, first.getBoundingClientRect().top - top);
      if (selected) this.selected = Array.prototype.indexOf.call(rows, selected);
      if (!this.more) {
        this.renumber();
        if (truncated) this.say(TRUNCATED);
      }
      this.drawSoon();
    } finally {
      this.loadingEarlier = false;
      this.earlier.disabled = false;
      if (id === this.id) this.earlier.hidden = !this.more;
    }
  }

  /** Number the prompts (once the timeline starts with the session's first). */
  renumber() {
    let n = 0;
    for (const r of this.list.querySelectorAll('li[data-kind="prompt"]')) {
      n++;
      if (!r.dataset.agent) r.querySelector('.what b').textContent = `Prompt ${n}`;
    }
    this.counts.prompts = n;
    this.numbered = true;
  }

  contextPoint(e) {
    if (e.type === 'context_growth' && !e.agent_id) {
      this.growth.set(e.id, [e.ts_ms, e.cumulative]);
      if (e.parts) this.parts.set(e.id, e.parts);
    }
    if (e.type === 'compaction') this.compactions.set(e.id, e.ts_ms);
  }

  say(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  /** Append the queued events: a bounded batch per frame, so a long history stays responsive. */
  flush() {
    if (this.loading || !this.queue.length) return;
    // Follow the tail once the reader went there; the first batch opens at the top.
    const follow = this.flushed && window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
    this.flushed = true;
    this.queue.sort((a, b) => a.id - b.id);
    const batch = this.queue.splice(0, 1500);
    const frag = document.createDocumentFragment();
    for (const e of batch) {
      // Older than the loaded pages (a re-read after a lag): "Load earlier" brings those.
      if (this.seen.has(e.id) || (this.oldest != null && e.id < this.oldest)) continue;
      this.seen.add(e.id);
      const row = this.add(e);
      if (row) frag.append(row);
    }
    this.list.append(frag);
    this.list.dataset.loaded = 'true';
    if (!this.content && this.seen.size && this.list.childElementCount) {
      this.say('Commands, paths and text are shown when serve runs with --include-content; sizes and names otherwise.');
    }
    if (this.content) this.notice.hidden = true;
    if (follow) window.scrollTo(0, document.documentElement.scrollHeight);
    this.drawSoon();
    if (this.queue.length) this.flushSoon();
  }

  lane(agent) {
    if (!agent) return 0;
    if (!this.lanes.has(agent)) this.lanes.set(agent, this.lanes.size + 1);
    return this.lanes.get(agent);
  }

  /** The row of one event (a new one), or null when it only updates another row or the chart. */
  add(e) {
    if (e.cost_usd) this.cost += e.cost_usd;
    if (e.text || e.summary || e.input || e.output) this.content = true;
    const lane = this.lane(e.agent_id);
    const row = (kind, cls, ...what) => el('li', {
      class: `ev ${cls} lane-${lane === 0 ? 0 : 1 + ((lane - 1) % (LANES - 1))}`,
      'data-kind': kind, 'data-event': e.id, 'data-agent': e.agent_id || null,
    },
    el('time', { class: 'at', text: fmtTime(e.ts_ms) }),
    el('span', { class: 'who', text: e.agent_id ? `agent ${e.agent_id.slice(0, 7)}` : 'main' }),
    el('span', { class: 'what' }, ...what));
    switch (e.type) {
      case 'message': {
        if (e.role === 'user') {
          this.counts.prompts++;
          return row('prompt', 'prompt', el('b', { text: e.agent_id ? 'Task prompt' : this.numbered ? `Prompt ${this.counts.prompts}` : 'Prompt' }),
            e.text ? el('span', { class: 'text', text: e.text }) : null);
        }
        const u = e.usage || {};
        if (e.continued) {
          const last = this.lastReply?.get(e.agent_id || '');
          if (last) {
            last.tokens += (u.output || 0);
            last.cost += e.cost_usd || 0;
            last.detail.textContent = replyDetail(last);
          }
          return null;
        }
        const info = { model: e.model, tokens: u.output || 0, input: (u.input || 0) + (u.cache_read || 0) + (u.cache_creation || 0), cost: e.cost_usd || 0 };
        info.detail = el('span', { class: 'muted', text: replyDetail(info) });
        (this.lastReply ||= new Map()).set(e.agent_id || '', info);
        return row('reply', 'reply', el('b', { text: 'Reply' }), info.detail);
      }
      case 'tool_use': {
        this.counts.tools++;
        const dur = el('span', { class: 'dur' }, el('span', { class: 'durbar' }), el('span', { class: 'durtext muted', text: 'running' }));
        const r = row('tool_use', 'tool running',
          el('b', { class: 'tool-name', text: e.name }),
          e.summary ? el('code', { class: 'summary', text: e.summary }) : el('span', { class: 'muted', text: e.category || '' }),
          dur);
        r.dataset.tool = e.name;
        r.dataset.since = e.ts_ms;
        this.toolRows.set(e.tool_use_id, r);
        // Its result came with a later page: it joins its call.
        const orphan = this.orphans.get(e.tool_use_id);
        if (orphan) {
          this.orphans.delete(e.tool_use_id);
          orphan.row.remove();
          this.finish(r, orphan.e);
        }
        return r;
      }
      case 'tool_result': {
        const r = this.toolRows.get(e.tool_use_id);
        if (!r) {
          // Its call is older than what is loaded (or kept): the result alone.
          const alone = row('tool_result', e.is_error ? 'result error' : 'result',
            el('b', { text: `${e.name} result` }), el('span', { class: 'muted', text: resultDetail(e) }),
            e.is_error ? el('span', { class: 'errtag', text: 'error' }) : null);
          this.orphans.set(e.tool_use_id, { row: alone, e });
          return alone;
        }
        this.finish(r, e);
        return null;
      }
      case 'agent_spawn':
        this.counts.spawns++;
        return row('agent_spawn', 'spawn', el('b', { text: `Sub-agent: ${e.agent_type}` }),
          e.description ? el('span', { class: 'text', text: e.description }) : null);
      case 'compaction':
        this.contextPoint(e);
        return row('compaction', 'compaction', el('b', { text: `Compaction (${e.trigger})` }),
          el('span', { class: 'muted', text: e.tokens_before != null ? `${fmtNum(e.tokens_before)} → ${e.tokens_after != null ? fmtNum(e.tokens_after) : '?'} tokens` : '' }));
      case 'context_growth':
        this.contextPoint(e);
        return null;
      case 'api_error':
        return row('api_error', 'error', el('b', { text: 'API error' }), el('span', { text: e.kind }));
      case 'rule_match':
        return row('rule_match', `rule sev-${e.severity}`, el('b', { text: `Rule ${e.rule}` }),
          el('span', { class: 'muted', text: `${e.severity} · ${e.tool}` }));
      case 'approval_pending': {
        const aid = approvalId(e);
        const pending = this.approvals.pending.some(a => a.id === aid);
        const r = row('approval_pending', 'approval', el('b', { text: `Approval: ${e.tool_name || e.tool || ''}` }),
          e.summary ? el('code', { class: 'summary', text: e.summary }) : null,
          el('span', { class: 'muted', text: [e.rule, e.reason].filter(Boolean).join(': ') }),
          aid && (pending || this.approvals.supported) ? decisionButtons(aid) : null);
        if (aid) this.approvalRows.set(aid, r);
        return r;
      }
      case 'approval_decided':
      case 'approval_expired': {
        const aid = approvalId(e);
        const decision = e.decision || e.state || (e.type === 'approval_expired' ? 'expired' : 'decided');
        this.approvalRows.get(aid)?.querySelector('.decide')?.replaceChildren(el('span', { class: `decided ${decision}`, text: decision }));
        return row(e.type, `approval ${decision}`, el('b', { text: `Approval ${decision}` }),
          el('span', { class: 'muted', text: [e.reason || e.decided_reason, e.decided_by].filter(Boolean).join(' · ') }));
      }
      case 'session_paused':
        return row('session_paused', 'control', el('b', { text: 'Paused' }), el('span', { class: 'text', text: e.message || '' }));
      case 'session_resumed':
        return row('session_resumed', 'control', el('b', { text: 'Resumed' }));
      case 'note_queued':
        return row('note_queued', 'control', el('b', { text: 'Note queued' }), el('span', { class: 'text', text: e.text || '' }));
      case 'note_delivered':
        return row('note_delivered', 'control', el('b', { text: 'Note delivered' }));
      case 'session_start':
        return row('session_start', 'life', el('b', { text: 'Session started' }),
          el('span', { class: 'muted mono', text: [e.cwd, e.git_branch].filter(Boolean).join(' · ') }));
      case 'session_idle': return row('session_idle', 'life', el('b', { text: 'Idle' }));
      case 'session_resume': return row('session_resume', 'life', el('b', { text: 'Active again' }));
      case 'session_end': return row('session_end', 'life', el('b', { text: `Ended (${e.reason})` }));
      default:
        return row(e.type, 'other', el('b', { text: e.type }));
    }
  }

  /** A call's row takes its result. */
  finish(r, e) {
    r.classList.remove('running');
    delete r.dataset.since;
    if (e.is_error) {
      this.counts.errors++;
      r.classList.add('error');
      r.querySelector('.what').append(el('span', { class: 'errtag', text: 'error' }));
    }
    const bar = r.querySelector('.durbar');
    if (e.duration_ms != null) bar.style.width = `${barWidth(e.duration_ms)}%`;
    r.querySelector('.durtext').textContent = resultDetail(e) || 'done';
    if (e.output) r.append(el('pre', { class: 'output', text: e.output }));
  }

  /** Running calls show their age. */
  tickPending() {
    if (!this.id) return;
    const now = Date.now();
    for (const r of this.list.querySelectorAll('li.running[data-since]')) {
      r.querySelector('.durtext').textContent = `running ${fmtDuration(now - Number(r.dataset.since))}`;
    }
  }

  drawStats() {
    const s = this.store.sessions.get(this.id);
    if (!s) return;
    this.title.textContent = `${s.project || 'session'} · ${s.id.slice(0, 8)}`;
    this.stateBadge.className = `state ${s.state}`;
    this.stateBadge.textContent = s.state;
    const t = s.tokens || {};
    const item = (k, v, cls) => [el('dt', { text: k }), el('dd', { class: cls || null, text: v })];
    this.stats.replaceChildren(
      ...item('Branch', s.git_branch || '—'),
      ...item('Model', s.last_model || (s.models || []).join(', ') || '—'),
      ...item('Duration', fmtDuration(s.duration_ms)),
      ...item('Prompts', s.prompts),
      ...item('Tool calls', s.tool_calls),
      ...item('Errors', s.tool_errors + s.api_errors, s.tool_errors + s.api_errors ? 'err' : null),
      ...item('Sub-agents', s.subagents),
      ...item('Tokens', `${fmtNum(t.input + t.cache_read + t.cache_creation)} in · ${fmtNum(t.output)} out`),
      ...item('Cost', fmtCost(s.cost_usd)),
      ...item('Context', `${fmtNum(s.context_tokens)} / ${fmtNum(s.context_window)} (${Math.round((s.context_utilization || 0) * 100)}%)`),
    );
    this.stats.dataset.timelineCost = this.cost.toFixed(6);
  }

  /** The main conversation's context size over time, with the window and compactions. */
  drawChart() {
    const s = this.store.sessions.get(this.id);
    // By event id: pages and live events may add points out of order.
    const pts = [...this.growth].sort((a, b) => a[0] - b[0]).map(p => p[1]);
    const compactions = [...this.compactions.values()];
    const window = s?.context_window || 200000;
    const max = Math.max(window, ...pts.map(p => p[1]));
    const t0 = pts.length ? pts[0][0] : 0;
    const t1 = pts.length ? Math.max(pts.at(-1)[0], t0 + 1) : 1;
    const x = t => ((t - t0) / (t1 - t0)) * CHART_W;
    const y = v => CHART_H - (v / max) * (CHART_H - 4);
    const kids = [el('line', { x1: 0, x2: CHART_W, y1: y(window), y2: y(window), class: 'limit' })];
    for (const c of compactions) {
      if (pts.length && c >= t0) kids.push(el('line', { x1: x(c), x2: x(c), y1: 0, y2: CHART_H, class: 'compact' }));
    }
    if (pts.length) {
      // Steps: the size holds until the next change.
      const path = [];
      pts.forEach(([t, v], i) => {
        if (i) path.push(`${x(t).toFixed(1)},${y(pts[i - 1][1]).toFixed(1)}`);
        path.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      });
      kids.push(el('polyline', { points: path.join(' '), class: 'growth' }));
    }
    this.chart.replaceChildren(...kids);
    this.chartLabel.textContent = pts.length
      ? `${fmtNum(pts.at(-1)[1])} of ${fmtNum(window)} tokens · ${compactions.length} compaction${compactions.length === 1 ? '' : 's'} · timeline cost ${fmtCost(this.cost)}`
      : 'no context data yet';
    this.drawComposition();
  }

  /**
   * What each main-chain call added to the context, by source, as stacked columns in call
   * order (the server's split of the call's growth: `context_growth.parts`), and the
   * session's totals by source in the legend. Shrinking calls (compactions, dropped
   * context) add nothing. The three tools whose results added most have their own colour.
   */
  drawComposition() {
    const calls = [...this.parts].sort((a, b) => a[0] - b[0]).map(p => p[1]);
    const totals = new Map();
    for (const parts of calls) {
      for (const [k, v] of Object.entries(parts)) if (v > 0) totals.set(k, (totals.get(k) || 0) + v);
    }
    const tools = [...totals].filter(([k]) => k.startsWith('tool_result:')).sort((a, b) => b[1] - a[1]).map(([k]) => k);
    const group = k => {
      const t = tools.indexOf(k);
      if (t >= 0) return t < 3 ? `tool${t}` : 'tools';
      return SOURCE_GROUP[k] || 'other';
    };
    const label = g => g.startsWith('tool') && g !== 'tools' ? `${tools[Number(g.slice(4))].slice(12)} results` : GROUP_LABEL[g];
    const groups = new Map();
    for (const [k, v] of totals) groups.set(group(k), (groups.get(group(k)) || 0) + v);
    const order = GROUPS.filter(g => groups.has(g));
    // At most COMP_COLUMNS columns: a long session's calls are summed in equal runs.
    const per = Math.max(1, Math.ceil(calls.length / COMP_COLUMNS));
    const columns = [];
    for (let i = 0; i < calls.length; i += per) {
      const c = new Map();
      for (const parts of calls.slice(i, i + per)) {
        for (const [k, v] of Object.entries(parts)) if (v > 0) c.set(group(k), (c.get(group(k)) || 0) + v);
      }
      columns.push(c);
    }
    const max = Math.max(1, ...columns.map(c => [...c.values()].reduce((a, b) => a + b, 0)));
    const w = CHART_W / Math.max(columns.length, 1);
    const rects = [];
    columns.forEach((c, i) => {
      let top = COMP_H;
      for (const g of order) {
        const v = c.get(g);
        if (!v) continue;
        const h = (v / max) * (COMP_H - 2);
        top -= h;
        rects.push(el('rect', { x: (i * w).toFixed(2), y: top.toFixed(2), width: Math.max(w - (w > 3 ? 1 : 0), 0.5).toFixed(2), height: h.toFixed(2), class: `src-${g}` }));
      }
    });
    this.compChart.replaceChildren(...rects);
    const sum = [...totals.values()].reduce((a, b) => a + b, 0);
    const fromTools = tools.reduce((a, k) => a + totals.get(k), 0);
    const pct = v => `${Math.round((v / (sum || 1)) * 100)}%`;
    this.compLegend.replaceChildren(...order.map(g => el('li', { 'data-group': g, 'data-tokens': groups.get(g) },
      el('span', { class: `swatch src-${g}` }), el('span', { text: `${label(g)} ${fmtNum(groups.get(g))} (${pct(groups.get(g))})` }))));
    this.compLabel.textContent = calls.length
      ? `${calls.length} call${calls.length === 1 ? '' : 's'} · ${fmtNum(sum)} tokens added · ${pct(fromTools)} from tool results`
      : 'no calls yet';
    this.comp.dataset.calls = calls.length;
    this.comp.dataset.sources = JSON.stringify(Object.fromEntries(totals));
  }

  /** Move the highlighted row (j/k in the session view). */
  move(d) {
    const rows = this.list.children;
    if (!rows.length) return;
    if (d < 0 && this.selected === 0 && this.more) { this.loadEarlier(); return; }
    rows[this.selected]?.classList.remove('selected');
    this.selected = Math.max(0, Math.min(rows.length - 1, this.selected < 0 ? (d > 0 ? 0 : rows.length - 1) : this.selected + d));
    rows[this.selected].classList.add('selected');
    rows[this.selected].scrollIntoView({ block: 'nearest' });
  }

  close() {
    this.id = null;
    this.more = false;
    this.earlier.hidden = true;
    this.list.replaceChildren();
  }
}

/** Columns of the composition chart at most; its height in SVG units. */
const COMP_COLUMNS = 300;
const COMP_H = 80;
/** The composition's groups, in stacking order (bottom first), and their names. */
const GROUPS = ['tool0', 'tool1', 'tool2', 'tools', 'user', 'assistant', 'attachment', 'meta', 'other'];
const SOURCE_GROUP = { user_text: 'user', assistant_output: 'assistant', attachment: 'attachment', meta: 'meta' };
const GROUP_LABEL = {
  tools: 'Other tool results', user: 'Typed text', assistant: 'Replies', attachment: 'Attachments',
  meta: 'Meta lines', other: 'Not in the lines (system prompt, tools)',
};

const TRUNCATED = 'Earlier events of this session are no longer kept; the timeline starts later.';

function resultDetail(e) {
  return [e.duration_ms != null ? fmtDuration(e.duration_ms) : '', e.content_bytes != null ? `${fmtNum(e.content_bytes)} B` : '']
    .filter(Boolean).join(' · ');
}

function replyDetail(r) {
  return [r.model?.replace(/^claude-/, ''), r.input ? `${fmtNum(r.input)} in` : '', `${fmtNum(r.tokens)} out`, r.cost ? fmtCost(r.cost) : '']
    .filter(Boolean).join(' · ');
}

/** 100 ms → 6 %, 1 s → 21 %, 10 s → 41 %, 100 s → 60 %: long calls stand out, short ones still show. */
function barWidth(ms) {
  return Math.max(1, Math.min(100, 20 * Math.log10(1 + ms / 100)));
}

function approvalId(e) {
  return e.approval_id ?? e.approval?.id ?? null;
}
