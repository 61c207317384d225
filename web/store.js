// The console's data: live sessions from `/api/events` (a `snapshot` event, then deltas),
// the recent ones from `/api/sessions`, each session's recent events, pending tool calls.
// One EventSource for the whole page; it reconnects by itself and sends Last-Event-ID, so
// the server replays what was missed. Counts come from the server's snapshots and are
// moved by the deltas in between; a re-read of `/api/sessions` after each (re)connection
// and every 15 s puts them back on the server's numbers.

/** Every event type the server sends, ours and the control side's (issue 11 contract). */
export const EVENT_TYPES = [
  'message', 'tool_use', 'tool_result', 'session_start', 'session_idle', 'session_resume', 'session_end',
  'agent_spawn', 'compaction', 'api_error', 'context_growth', 'rule_match', 'error',
  'approval_pending', 'approval_decided', 'approval_expired', 'session_paused', 'session_resumed',
  'note_queued', 'note_delivered',
];

/** Events kept in the page per session (the server keeps more: `/api/sessions/{id}/events`). */
const KEEP_PER_SESSION = 2000;
const KEEP_SESSIONS = 200;

export class Store extends EventTarget {
  constructor() {
    super();
    /** id → session: the server's snapshot fields plus `pending` (tool_use_id → {name, ts}). */
    this.sessions = new Map();
    /** id → events of this page's stream, oldest first. */
    this.buffers = new Map();
    this.connected = false;
    this.lastId = 0;
    this.source = null;
  }

  /** Open the stream and read the recent sessions. */
  start() {
    this.refresh();
    this.connect();
    setInterval(() => this.refresh(), 15000);
  }

  connect() {
    const es = new EventSource('/api/events');
    this.source = es;
    es.addEventListener('open', () => this.setConnected(true));
    es.addEventListener('error', () => this.setConnected(false));
    es.addEventListener('snapshot', m => {
      this.setConnected(true);
      for (const s of JSON.parse(m.data)) this.upsert(s);
      this.emit('sessions');
      // Replayed events after a reconnect were already in the snapshot's counts: re-read soon.
      setTimeout(() => this.refresh(), 1000);
    });
    es.addEventListener('reset', m => {
      const note = JSON.parse(m.data);
      if (note.reason === 'unknown_id') {
        // The daemon restarted: event ids start again, our buffers no longer compare.
        this.buffers.clear();
        this.lastId = 0;
        this.emit('reset');
      }
    });
    es.addEventListener('lagged', m => {
      // The stream skipped events: the timeline reads them back from the server's history.
      this.lagged = (this.lagged || 0) + (JSON.parse(m.data).missed || 0);
      document.body.dataset.lagged = this.lagged;
      this.emit('lagged');
    });
    for (const t of EVENT_TYPES) {
      es.addEventListener(t, m => this.onEvent(JSON.parse(m.data)));
    }
  }

  setConnected(on) {
    if (this.connected === on) return;
    this.connected = on;
    this.emit('connection');
  }

  /** Read `/api/sessions` (live and recent) and take its numbers. */
  async refresh() {
    try {
      const r = await fetch('/api/sessions?limit=500', { credentials: 'same-origin' });
      if (!r.ok) return;
      for (const s of await r.json()) this.upsert(s);
      this.emit('sessions');
    } catch (_) {
      // Offline: the stream's state says so.
    }
  }

  upsert(snap) {
    const old = this.sessions.get(snap.id);
    const s = Object.assign(old || { pending: new Map(), agents: new Set(), approvals: 0 }, snap);
    this.sessions.set(snap.id, s);
    return s;
  }

  /** A session we have not seen in a snapshot yet: a stub, filled by the next read. */
  stub(e) {
    let s = this.sessions.get(e.session_id);
    if (s) return s;
    s = this.upsert({
      id: e.session_id, project: e.project, cwd: null, git_branch: null, state: 'active',
      first_ms: e.ts_ms, last_ms: e.ts_ms, duration_ms: 0, models: [], prompts: 0, api_requests: 0,
      tool_calls: 0, tool_errors: 0, api_errors: 0, subagents: 0, compactions: 0,
      tokens: { input: 0, output: 0, cache_read: 0, cache_creation: 0 }, cost_usd: 0,
      context_tokens: 0, context_window: 200000, context_utilization: 0, lines_added: 0, lines_removed: 0,
    });
    clearTimeout(this.stubRead);
    this.stubRead = setTimeout(() => this.refresh(), 300);
    return s;
  }

  onEvent(e) {
    if (e.id) this.lastId = Math.max(this.lastId, e.id);
    if (!e.session_id) { this.emit('event', e); return; }
    this.keep(e);
    const s = this.stub(e);
    this.apply(s, e);
    this.emit('event', e);
    this.emit('session', s);
  }

  keep(e) {
    let b = this.buffers.get(e.session_id);
    if (!b) {
      if (this.buffers.size >= KEEP_SESSIONS) {
        // Forget the quietest session's events.
        let quiet = null;
        for (const [id, list] of this.buffers) if (!quiet || list.at(-1).id < quiet[1]) quiet = [id, list.at(-1).id];
        this.buffers.delete(quiet[0]);
      }
      b = [];
      this.buffers.set(e.session_id, b);
    }
    b.push(e);
    if (b.length > KEEP_PER_SESSION) b.splice(0, b.length - KEEP_PER_SESSION);
  }

  /** Move a session's numbers by one event (the server's next snapshot corrects any drift). */
  apply(s, e) {
    s.last_ms = Math.max(s.last_ms || 0, e.ts_ms);
    if (s.first_ms == null || e.ts_ms < s.first_ms) s.first_ms = e.ts_ms;
    s.duration_ms = s.last_ms - s.first_ms;
    if (e.agent_id) s.agents.add(e.agent_id);
    switch (e.type) {
      case 'message':
        if (e.role === 'user' && !e.continued) s.prompts++;
        if (e.model && !s.models.includes(e.model)) s.models = [...s.models, e.model].sort();
        if (e.model && !e.agent_id) s.last_model = e.model;
        if (e.usage) {
          for (const k of ['input', 'output', 'cache_read', 'cache_creation']) s.tokens[k] += e.usage[k] || 0;
        }
        if (e.cost_usd) s.cost_usd += e.cost_usd;
        if (s.state !== 'active') s.state = 'active';
        break;
      case 'tool_use':
        s.tool_calls++;
        s.pending.set(e.tool_use_id, { name: e.name, ts: e.ts_ms });
        break;
      case 'tool_result':
        s.pending.delete(e.tool_use_id);
        if (e.is_error) s.tool_errors++;
        break;
      case 'agent_spawn': s.subagents++; break;
      case 'compaction': s.compactions++; break;
      case 'api_error': s.api_errors++; break;
      case 'context_growth':
        if (!e.agent_id) {
          s.context_tokens = e.cumulative;
          if (e.cumulative > s.context_window) s.context_window = 1000000;
          s.context_utilization = e.cumulative / s.context_window;
        }
        break;
      case 'session_start':
        s.cwd = e.cwd ?? s.cwd;
        s.git_branch = e.git_branch ?? s.git_branch;
        s.state = 'active';
        break;
      case 'session_idle': s.state = 'idle'; break;
      case 'session_resume': s.state = 'active'; break;
      case 'session_end': s.state = 'ended'; s.pending.clear(); break;
      case 'session_paused': s.paused = true; break;
      case 'session_resumed': s.paused = false; break;
      case 'approval_pending': s.approvals++; break;
      case 'approval_decided': case 'approval_expired': s.approvals = Math.max(0, s.approvals - 1); break;
    }
  }

  /**
   * A session's past events: the server's history (`/api/sessions/{id}/events`) joined
   * with what this page received, by id, oldest first. `truncated`: older ones are gone.
   * `query` asks for a page (`limit`, `before`: the latest `limit` before that id; `type`):
   * `more` then says whether earlier ones are kept. The page's own events join only the
   * latest page of all types (they are newer than anything before it).
   */
  async history(id, query = {}) {
    let server = { events: [], truncated: false };
    const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v != null)).toString();
    try {
      const r = await fetch(`/api/sessions/${encodeURIComponent(id)}/events${q ? `?${q}` : ''}`, { credentials: 'same-origin' });
      if (r.ok) server = await r.json();
    } catch (_) { /* the page's own buffer is all there is */ }
    const byId = new Map();
    for (const e of server.events) byId.set(e.id, e);
    if (query.before == null && query.type == null) for (const e of this.buffers.get(id) || []) byId.set(e.id, e);
    const events = [...byId.values()].sort((a, b) => a.id - b.id);
    return { events, truncated: !!server.truncated && events.length > 0, more: !!server.more };
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
