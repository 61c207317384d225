// Human-in-the-loop actions: approvals, pause and resume, notes. They POST to the control
// API with the page's cookie (`cs_token`, set by the `…/?token=…` link that `serve`
// prints); the server refuses them without it (401) or from another origin (403).

import { el, fmtAgo, toast } from './util.js';

/** POST JSON; returns the parsed answer, or null after showing what went wrong. */
export async function post(path, body) {
  let r;
  try {
    r = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
  } catch (_) {
    toast('The daemon cannot be reached.');
    return null;
  }
  if (r.ok) return r.json().catch(() => ({}));
  let detail = '';
  try { detail = (await r.json()).error || ''; } catch (_) { /* not JSON */ }
  const why = {
    401: 'Not allowed (401): open the console with the link `serve` printed (…/?token=…).',
    403: 'Refused (403): this request came from another origin.',
    404: 'Not found (404): no such approval or session, or this daemon has no control API.',
    409: 'Already decided (409).',
  }[r.status] || `Failed (${r.status}).`;
  toast(detail ? `${why} ${detail}` : why);
  return null;
}

async function getJson(path) {
  try {
    const r = await fetch(path, { credentials: 'same-origin' });
    return r.ok ? await r.json() : null;
  } catch (_) {
    return null;
  }
}

/** Allow or deny approval `id`. */
export async function decide(id, decision, reason) {
  const ok = await post(`/api/approvals/${encodeURIComponent(id)}`, { decision, reason: reason || '' });
  if (ok) toast(decision === 'allow' ? 'Approved.' : 'Denied.', 'ok');
  return ok;
}

/** Approve and Deny (with a reason field) for one pending approval. */
export function decisionButtons(id) {
  const reason = el('input', { type: 'text', class: 'reason', placeholder: 'Reason (sent to Claude)', 'aria-label': 'Reason' });
  const allow = el('button', { type: 'button', class: 'approve', 'data-action': 'approve', text: 'Approve' });
  const deny = el('button', { type: 'button', class: 'deny', 'data-action': 'deny', text: 'Deny' });
  const box = el('span', { class: 'decide' }, reason, allow, deny);
  const act = async decision => {
    allow.disabled = deny.disabled = true;
    if (!(await decide(id, decision, reason.value))) allow.disabled = deny.disabled = false;
  };
  allow.addEventListener('click', () => act('allow'));
  deny.addEventListener('click', () => act('deny'));
  return box;
}

/** The bar of pending approvals above both views, read from `GET /api/approvals`. */
export class Approvals {
  constructor(box, store) {
    this.box = box;
    this.store = store;
    this.supported = true;
    this.pending = [];
    this.timer = null;
    store.addEventListener('event', ev => {
      if (ev.detail.type?.startsWith('approval_')) this.load();
    });
    store.addEventListener('connection', () => this.load());
    setInterval(() => this.render(), 1000);
  }

  async load() {
    let r;
    try {
      r = await fetch('/api/approvals', { credentials: 'same-origin' });
    } catch (_) {
      return;
    }
    if (r.status === 404) { this.supported = false; this.pending = []; this.render(true); return; }
    if (!r.ok) return;
    this.supported = true;
    const body = await r.json();
    this.pending = (body.approvals || []).filter(a => a.state === 'pending');
    this.render(true);
  }

  /** Pending approvals of one session (for its view). */
  of(sessionId) {
    return this.pending.filter(a => a.session_id === sessionId);
  }

  render(rebuild = false) {
    if (!rebuild) {
      for (const age of this.box.querySelectorAll('[data-created]')) age.textContent = fmtAgo(Number(age.dataset.created));
      return;
    }
    this.box.replaceChildren();
    this.box.hidden = this.pending.length === 0;
    if (!this.pending.length) return;
    this.box.append(el('h2', { text: `Waiting for you: ${this.pending.length}` }));
    for (const a of this.pending) {
      this.box.append(el('div', { class: 'approval', 'data-approval': a.id },
        el('a', { href: `#/session/${encodeURIComponent(a.session_id)}`, class: 'mono', text: a.session_id.slice(0, 8) }),
        el('b', { text: a.tool_name }),
        el('code', { class: 'summary', text: a.summary || '' }),
        el('span', { class: 'muted', text: [a.rule, a.reason].filter(Boolean).join(': ') }),
        el('span', { class: 'muted', 'data-created': a.created_ms, text: fmtAgo(a.created_ms) }),
        decisionButtons(a.id)));
    }
  }
}

/** Pause/resume and notes for the open session. */
export class Controls {
  constructor(store) {
    this.store = store;
    this.session = null;
    this.paused = false;
    this.pauseForm = document.getElementById('pause-form');
    this.pauseButton = document.getElementById('pause');
    this.pauseMsg = document.getElementById('pause-msg');
    this.noteForm = document.getElementById('note-form');
    this.noteText = document.getElementById('note-text');
    this.info = document.getElementById('control-info');
    this.badge = document.getElementById('s-paused');
    this.pauseForm.addEventListener('submit', ev => { ev.preventDefault(); this.togglePause(); });
    this.noteForm.addEventListener('submit', ev => { ev.preventDefault(); this.addNote(); });
    store.addEventListener('event', ev => {
      const e = ev.detail;
      if (e.session_id !== this.session) return;
      if (['session_paused', 'session_resumed', 'note_queued', 'note_delivered'].includes(e.type)) this.load();
    });
  }

  open(id) {
    this.session = id;
    this.setPaused(false, null, 0);
    this.load();
  }

  async load() {
    const id = this.session;
    const c = await getJson(`/api/control/${encodeURIComponent(id)}`);
    if (id !== this.session) return;
    if (c) this.setPaused(!!c.paused, c.message, c.notes_pending || 0);
  }

  setPaused(paused, message, notes) {
    this.paused = paused;
    this.pauseButton.textContent = paused ? 'Resume' : 'Pause';
    this.pauseMsg.hidden = paused;
    this.badge.hidden = !paused;
    const bits = [];
    if (paused) bits.push(`Paused: tool calls are denied with “${message || 'paused from the console'}”.`);
    if (notes) bits.push(`${notes} note${notes > 1 ? 's' : ''} waiting for delivery.`);
    this.info.textContent = bits.join(' ');
  }

  async togglePause() {
    const id = encodeURIComponent(this.session);
    if (this.paused) {
      if (await post(`/api/sessions/${id}/resume`, {})) { toast('Resumed.', 'ok'); this.load(); }
    } else {
      const message = this.pauseMsg.value.trim() || 'Paused by a person watching this session; wait for them.';
      if (await post(`/api/sessions/${id}/pause`, { message })) { toast('Paused.', 'ok'); this.load(); }
    }
  }

  async addNote() {
    const text = this.noteText.value.trim();
    if (!text) return;
    if (await post(`/api/sessions/${encodeURIComponent(this.session)}/notes`, { text })) {
      this.noteText.value = '';
      toast('Note queued: Claude gets it with its next prompt or tool result.', 'ok');
      this.load();
    }
  }
}
