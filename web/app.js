// The console's entry: routes (`#/` sessions, `#/session/<id>` one session), the theme,
// the keyboard, and the connection badge.

import { Approvals, Controls } from './control.js';
import { SessionView } from './session.js';
import { SessionsView } from './sessions.js';
import { Store } from './store.js';

const store = new Store();
const approvals = new Approvals(document.getElementById('approvals'), store);
const controls = new Controls(store);
const sessions = new SessionsView(store, id => { location.hash = `#/session/${encodeURIComponent(id)}`; });
const session = new SessionView(store, approvals, controls);

const listView = document.getElementById('sessions-view');
const oneView = document.getElementById('session-view');

function route() {
  const m = location.hash.match(/^#\/session\/(.+)$/);
  if (m) {
    const id = decodeURIComponent(m[1]);
    listView.hidden = true;
    oneView.hidden = false;
    document.body.dataset.view = 'session';
    if (session.id !== id) {
      sessions.selected = id;
      window.scrollTo(0, 0);
      session.open(id);
    }
  } else {
    session.close();
    oneView.hidden = true;
    listView.hidden = false;
    document.body.dataset.view = 'sessions';
    sessions.markSelected();
  }
}

function back() {
  if (!oneView.hidden) location.hash = '#/';
}

// Theme: the system's unless chosen here (kept in localStorage).
const themeButton = document.getElementById('theme');
function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  const next = dark ? 'light' : 'dark';
  applyTheme(next);
  try { localStorage.setItem('cs-theme', next); } catch (_) { /* private mode */ }
}
try { applyTheme(localStorage.getItem('cs-theme')); } catch (_) { /* private mode */ }
themeButton.addEventListener('click', toggleTheme);

const conn = document.getElementById('conn');
store.addEventListener('connection', () => {
  conn.dataset.state = store.connected ? 'open' : 'closed';
  conn.textContent = store.connected ? 'live' : 'reconnecting…';
});

document.getElementById('back').addEventListener('click', back);

document.addEventListener('keydown', ev => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const typing = ev.target instanceof HTMLElement && ev.target.matches('input, textarea, select');
  if (typing) {
    if (ev.key === 'Escape') ev.target.blur();
    if (ev.key === 'Enter' && ev.target.id === 'search') { ev.target.blur(); sessions.move(1); }
    return;
  }
  const inList = !listView.hidden;
  const view = inList ? sessions : session;
  switch (ev.key) {
    case 'j': case 'ArrowDown': view.move(1); break;
    case 'k': case 'ArrowUp': view.move(-1); break;
    case 'Enter': if (inList) sessions.openSelected(); else return; break;
    case 'Escape': case 'Backspace': if (inList) return; back(); break;
    case '/': if (!inList) back(); sessions.focusSearch(); break;
    case 't': toggleTheme(); break;
    default: return;
  }
  ev.preventDefault();
});

window.addEventListener('hashchange', route);
route();
store.start();
