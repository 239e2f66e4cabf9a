// The speak4-sync integration console. Plain JavaScript, no build step, nothing fetched from
// anywhere but this daemon's /v1/admin/… JSON. The API token lives in this tab's session storage
// and goes out only as an Authorization header. Every value from the server is put into the page
// as text (textContent), never as HTML.
'use strict';

const TOKEN_KEY = 'speak4-sync.api-token';
const REFRESH_MS = 5000;
const views = ['overview', 'dead', 'audit', 'conflicts', 'contact'];
let timer = null;
let auditBefore = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class unauthorized extends Error {}

async function api(path, options) {
  const t = token();
  if (!t) throw new unauthorized();
  const res = await fetch('/v1/admin/' + path, {
    method: (options && options.method) || 'GET',
    headers: { 'Authorization': 'Bearer ' + t, 'Accept': 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
  });
  if (res.status === 401) throw new unauthorized();
  const body = await res.json().catch(() => ({}));
  if (!res.ok && !(options && options.allow && options.allow.includes(res.status))) {
    const msg = body && body.error ? body.error.message : res.statusText;
    throw new Error(res.status + ': ' + msg);
  }
  return { status: res.status, body };
}

// --- formatting ---------------------------------------------------------------------------

function fmtNum(v) { return v === null || v === undefined ? 'unknown' : Number(v).toLocaleString('en-US'); }
function fmtTime(iso) {
  if (!iso) return 'never';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return s + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  if (s < 172800) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' d';
}
function ageOf(iso, nowIso) {
  if (!iso) return null;
  return (new Date(nowIso || Date.now()) - new Date(iso)) / 1000;
}
function statusClass(s) {
  if (s === null || s === undefined) return 'serr';
  if (s === 429) return 's429';
  return 's' + Math.floor(s / 100);
}
function pretty(v) {
  if (typeof v === 'string') {
    try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; }
  }
  return JSON.stringify(v, null, 2);
}
function setText(id, v) { $(id).textContent = v; }

// --- login and navigation -----------------------------------------------------------------

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  for (const v of views) $('view-' + v).hidden = true;
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !message;
  $('login-error').textContent = message || '';
  $('token').focus();
}

function currentView() {
  const v = location.hash.replace(/^#/, '').split('?')[0];
  return views.includes(v) ? v : 'overview';
}

async function show() {
  clearTimeout(timer);
  if (!token()) { showLogin(); return; }
  $('login').hidden = true;
  $('nav').hidden = false;
  $('logout').hidden = false;
  const view = currentView();
  for (const v of views) $('view-' + v).hidden = v !== view;
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', a.dataset.view === view);
  await refresh(view, true);
}

async function refresh(view, first) {
  try {
    if (view === 'overview') await loadOverview();
    else if (view === 'dead') await loadDead();
    else if (view === 'audit' && first) await loadAudit(false);
    else if (view === 'conflicts') await loadConflicts();
    else if (view === 'contact' && first) { /* on demand */ }
    if (view !== 'dead') await loadDeadBadge();
    setText('refreshed', 'updated ' + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof unauthorized) { showLogin('The token was refused.'); return; }
    setText('refreshed', 'refresh failed: ' + e.message);
  }
  // Pages refresh themselves; the audit and the timeline refresh when searched.
  if (view !== 'contact' && view !== 'audit')
    timer = setTimeout(() => refresh(view, false), REFRESH_MS);
}

// --- overview -----------------------------------------------------------------------------

async function loadOverview() {
  const minutes = $('series-minutes').value;
  const [ov, se] = await Promise.all([api('overview'), api('series?minutes=' + minutes)]);
  const o = ov.body, st = o.status;
  setText('q-pending', fmtNum(st.queue.pending));
  setText('q-inflight', fmtNum(st.queue.inflight));
  setText('q-done', fmtNum(st.queue.done));
  setText('q-dead', fmtNum(st.queue.dead));
  $('q-dead').classList.toggle('error', st.queue.dead > 0);
  setText('oldest-pending', o.oldest_pending_at
    ? fmtAge(o.oldest_pending_age_seconds) + ' (' + fmtTime(o.oldest_pending_at) + ')' : 'none waiting');
  setText('rate-remaining', fmtNum(st.rate_limit.remaining));
  setText('rate-daily', fmtNum(st.rate_limit.daily_remaining));
  setText('rate-config', 'budget: ' + fmtNum(o.rate_budget.burst) + ' per ' +
    o.rate_budget.window_seconds + ' s, ' + fmtNum(o.rate_budget.daily) + ' a day');
  setText('last-pull', st.last_pull_at ? fmtTime(st.last_pull_at) + ' (' + fmtAge(ageOf(st.last_pull_at, o.now)) + ' ago)' : 'never');
  $('last-pull').dataset.iso = st.last_pull_at || '';
  setText('auth-state', st.auth.state);
  $('auth-state').classList.toggle('error', st.auth.state !== 'ok');
  setText('auth-detail', st.auth.mode + (st.auth.expires_at ? ', token expires ' + fmtTime(st.auth.expires_at) : '') +
    (st.auth.reason ? ' — ' + st.auth.reason : ''));
  setText('changes-seq', fmtNum(st.changes_seq));
  renderHealth(o.health, st);
  renderCharts(se.body.points);
}

function renderHealth(h, st) {
  const ok = h.status === 'ok';
  const pill = $('health-status');
  pill.textContent = h.status || 'unknown';
  pill.className = 'pill ' + (ok ? 'ok' : 'bad');
  $('health-reason').hidden = ok || !h.reason;
  $('health-reason').textContent = h.reason || '';
  const rows = $('health-rows');
  rows.replaceChildren();
  const loops = h.loops || {};
  for (const [name, l] of Object.entries(loops)) {
    const bad = l.stalled || l.state === 'down' || l.healthy === false;
    rows.append(el('tr', { 'data-part': 'loop:' + name },
      el('td', {}, name),
      el('td', { class: bad ? 'error' : '' }, l.stalled ? 'stalled' : l.state),
      el('td', { class: 'muted' }, (l.last_beat_at ? 'beat ' + fmtTime(l.last_beat_at) : '') + (l.error ? ' — ' + l.error : ''))));
  }
  // Parts (auth, breaker, database, …): every object at the top level but loops.
  for (const [name, p] of Object.entries(h)) {
    if (name === 'loops' || !p || typeof p !== 'object' || Array.isArray(p)) continue;
    const details = Object.entries(p).filter(([k, v]) => k !== 'state' && k !== 'healthy' && v !== null && v !== '')
      .map(([k, v]) => k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(', ');
    rows.append(el('tr', { 'data-part': name },
      el('td', {}, name),
      el('td', { class: p.healthy === false || (p.state && p.state !== 'ok' && p.state !== 'closed') ? 'error' : '' }, p.state || ''),
      el('td', { class: 'muted' }, details)));
  }
  // `status --json`'s breaker (issue 12) when the daemon reports one there.
  if (st.breaker && !h.breaker)
    rows.append(el('tr', { 'data-part': 'breaker' }, el('td', {}, 'breaker'), el('td', {}, st.breaker.state || ''),
      el('td', { class: 'muted' }, JSON.stringify(st.breaker))));
}

function chart(container, points, series, opts) {
  const W = 600, H = 160, L = 34, B = 18, T = 6, R = 4;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
  const n = points.length;
  let max = 0;
  for (const p of points) {
    if (opts.stacked) max = Math.max(max, series.reduce((a, x) => a + (p[x.key] || 0), 0));
    else for (const x of series) if (p[x.key] !== null && p[x.key] !== undefined) max = Math.max(max, p[x.key]);
  }
  if (max === 0) max = 1;
  const x = (i) => L + (W - L - R) * (n <= 1 ? 0 : i / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  s.append(svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }));
  s.append(svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
  const lab = svg('text', { x: 2, y: T + 8 }); lab.textContent = String(Math.round(max)); s.append(lab);
  const zero = svg('text', { x: 2, y: H - B }); zero.textContent = '0'; s.append(zero);
  if (n) {
    const first = svg('text', { x: L, y: H - 4 }); first.textContent = points[0].minute.slice(11, 16); s.append(first);
    const last = svg('text', { x: W - R - 28, y: H - 4 }); last.textContent = points[n - 1].minute.slice(11, 16); s.append(last);
  }
  if (opts.stacked) {
    const bw = Math.max(1, (W - L - R) / Math.max(n, 1) - 0.5);
    points.forEach((p, i) => {
      let base = 0;
      for (const ser of series) {
        const v = p[ser.key] || 0;
        if (!v) continue;
        const top = y(base + v), bottom = y(base);
        s.append(svg('rect', { x: L + i * (W - L - R) / n, y: top, width: bw, height: Math.max(0.5, bottom - top), class: ser.cls }));
        base += v;
      }
    });
  } else {
    for (const ser of series) {
      let d = '';
      points.forEach((p, i) => {
        const v = p[ser.key];
        if (v === null || v === undefined) return;
        d += (d ? ' L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
      });
      if (d) s.append(svg('path', { d, class: 'line ' + ser.cls }));
      // A minute with calls between empty ones is a point a line cannot show: draw a dot.
      points.forEach((p, i) => {
        const v = p[ser.key];
        if (v === null || v === undefined) return;
        const prev = i > 0 ? points[i - 1][ser.key] : null, next = i + 1 < n ? points[i + 1][ser.key] : null;
        if ((prev === null || prev === undefined) && (next === null || next === undefined))
          s.append(svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: 'dot ' + ser.cls }));
      });
    }
  }
  const legend = el('div', { class: 'legend' });
  for (const ser of series) legend.append(el('span', {}, el('i', { class: ser.cls }), ser.label));
  container.replaceChildren(s, legend);
}

function renderCharts(points) {
  chart($('chart-calls'), points, [
    { key: 'ok', label: '2xx/3xx', cls: 'c-ok' }, { key: 'client_error', label: '4xx', cls: 'c-4xx' },
    { key: 'rate_limited', label: '429', cls: 'c-429' }, { key: 'server_error', label: '5xx', cls: 'c-5xx' },
    { key: 'no_response', label: 'no response', cls: 'c-err' }], { stacked: true });
  chart($('chart-latency'), points, [
    { key: 'p50_ms', label: 'p50', cls: 'c-p50' }, { key: 'p95_ms', label: 'p95', cls: 'c-p95' }], {});
  chart($('chart-queue'), points, [{ key: 'queue_depth', label: 'queue depth', cls: 'c-queue' }], {});
}

// --- dead letters -------------------------------------------------------------------------

async function loadDeadBadge() {
  const r = await api('overview');
  const n = r.body.status.queue.dead;
  $('nav-dead').hidden = !n;
  $('nav-dead').textContent = n;
}

async function loadDead() {
  const r = await api('dead?limit=200');
  const rows = r.body.dead;
  $('nav-dead').hidden = !rows.length;
  $('nav-dead').textContent = rows.length;
  $('dead-empty').hidden = rows.length > 0;
  const list = $('dead-list');
  list.replaceChildren(...rows.map(deadItem));
}

function deadItem(d) {
  const retry = el('button', { type: 'button', class: 'primary retry', 'data-action': 'retry' }, 'Retry');
  const drop = el('button', { type: 'button', class: 'danger drop', 'data-action': 'drop' }, 'Drop');
  const note = el('span', { class: 'muted' });
  const item = el('article', { class: 'dead-item', 'data-outbox-id': String(d.id) },
    el('header', {},
      el('strong', {}, '#' + d.id + ' ' + d.entity + '.' + d.op),
      el('span', {}, 'GHL status ', el('b', { class: statusClass(d.last_status) }, d.last_status === null ? 'none' : d.last_status)),
      el('span', { class: 'muted' }, d.attempts + ' attempt' + (d.attempts === 1 ? '' : 's')),
      el('span', { class: 'muted' }, 'died ' + fmtTime(d.updated_at)),
      el('span', { class: 'muted' }, (d.speak4_id ? 'speak4 ' + d.speak4_id : '') + (d.ghl_id ? ' · ghl ' + d.ghl_id : '')),
      el('span', { class: 'actions' }, note, retry, drop)),
    el('h4', {}, 'GHL answer'),
    el('pre', { class: 'ghl-body' }, d.last_error === null ? '(none)' : pretty(d.last_error)),
    el('h4', {}, 'what was sent (outbox payload)'),
    el('pre', {}, pretty(d.payload)),
    el('h4', {}, 'Speak4 event' + (d.events.length === 1 ? '' : 's') + ' behind it'),
    ...(d.events.length ? d.events.map((e) => el('pre', { class: 'event' },
      e.type + (e.event_id ? ' (' + e.event_id + ')' : '') + ', received ' + fmtTime(e.received_at) + '\n' + pretty(e.body)))
      : [el('p', { class: 'muted' }, 'none kept (a pull, or an event older than the retention)')]));
  let armed = false;
  const act = async (action) => {
    retry.disabled = drop.disabled = true;
    try {
      const r = await api('outbox/' + d.id + '/' + action, { method: 'POST', allow: [404, 409] });
      if (r.status === 409) note.textContent = 'now ' + r.body.error.state + ', not dead';
      else if (r.status === 404) note.textContent = 'gone';
      else note.textContent = action === 'retry' ? 'queued again' : 'dropped';
      item.classList.add('done');
      setTimeout(() => refresh('dead', false), 800);
    } catch (e) {
      if (e instanceof unauthorized) { showLogin('The token was refused.'); return; }
      note.textContent = e.message;
      retry.disabled = drop.disabled = false;
    }
  };
  retry.addEventListener('click', () => act('retry'));
  drop.addEventListener('click', () => {
    // Dropping loses the change for good: a second click confirms.
    if (!armed) { armed = true; drop.textContent = 'Really drop?'; setTimeout(() => { armed = false; drop.textContent = 'Drop'; }, 4000); return; }
    act('drop');
  });
  return item;
}

// --- audit --------------------------------------------------------------------------------

async function loadAudit(older) {
  const q = new URLSearchParams();
  q.set('since', $('audit-since').value);
  if ($('audit-status').value) q.set('status', $('audit-status').value);
  if ($('audit-path').value) q.set('path', $('audit-path').value);
  q.set('limit', '200');
  if (older && auditBefore) q.set('before', auditBefore);
  const r = await api('audit?' + q.toString());
  const body = $('audit-rows');
  if (!older) body.replaceChildren();
  for (const a of r.body.audit) {
    body.append(el('tr', { 'data-audit-id': String(a.id) },
      el('td', {}, fmtTime(a.ts)),
      el('td', {}, el('code', {}, a.method + ' ' + a.path)),
      el('td', { class: statusClass(a.status) }, a.status === null ? 'none' : a.status),
      el('td', { class: 'num' }, a.latency_ms === null ? '' : a.latency_ms),
      el('td', { class: 'num' }, a.attempt === null ? '' : a.attempt),
      el('td', { class: 'num' }, a.outbox_id === null ? '' : a.outbox_id),
      el('td', { class: 'num' }, a.rate_limit_remaining === null ? '' : a.rate_limit_remaining),
      el('td', {}, el('code', {}, a.trace_id || '')),
      el('td', { class: 'error' }, a.error || '')));
  }
  const rows = r.body.audit;
  auditBefore = rows.length ? rows[rows.length - 1].id : auditBefore;
  $('audit-more').hidden = !r.body.more;
  setText('audit-note', (body.children.length ? body.children.length + ' calls' : 'no calls') +
    ' since ' + fmtTime(r.body.since) + (r.body.truncated ? ' (scan bound reached: narrow the filter)' : ''));
}

// --- conflicts ----------------------------------------------------------------------------

async function loadConflicts() {
  const r = await api('conflicts?limit=200');
  const rows = r.body.conflicts;
  $('conflicts-empty').hidden = rows.length > 0;
  $('conflict-rows').replaceChildren(...rows.map((c) => el('tr', {},
    el('td', {}, fmtTime(c.ts)),
    el('td', {}, c.entity + ' ' + (c.speak4_id || c.ghl_id || c.entity_id)),
    el('td', {}, el('code', {}, c.field)),
    el('td', {}, c.local_value === null ? '' : c.local_value),
    el('td', {}, c.remote_value === null ? '' : c.remote_value),
    el('td', {}, c.policy),
    el('td', {}, el('b', {}, c.winner)))));
}

// --- contact timeline ---------------------------------------------------------------------

function describe(e) {
  if (e.kind === 'event') return ['Speak4 event ' + e.event.type + (e.event.event_id ? ' (' + e.event.event_id + ')' : ''), pretty(e.event.body)];
  if (e.kind === 'outbox') return ['queued ' + e.outbox.entity + '.' + e.outbox.op + ' #' + e.outbox.id + ' — now ' + e.outbox.state +
    (e.outbox.attempts ? ', ' + e.outbox.attempts + ' attempts' : ''), e.outbox.last_error ? pretty(e.outbox.last_error) : null];
  if (e.kind === 'call') return [e.call.method + ' ' + e.call.path + ' → ' + (e.call.status === null ? 'no response' : e.call.status) +
    (e.call.latency_ms !== null ? ' in ' + e.call.latency_ms + ' ms' : '') + (e.call.error ? ' — ' + e.call.error : ''), null];
  if (e.kind === 'change') return ['change #' + e.change.seq + ': ' + e.change.entity + ' ' + e.change.kind + ' (' + e.change.source + ')', null];
  if (e.kind === 'conflict') return ['conflict on ' + e.conflict.field + ': local ' + JSON.stringify(e.conflict.local_value) +
    ' vs remote ' + JSON.stringify(e.conflict.remote_value) + ', ' + e.conflict.policy + ' → ' + e.conflict.winner, null];
  return [e.kind, null];
}

async function loadContact() {
  const q = $('contact-q').value.trim();
  if (!q) return;
  $('contact-error').hidden = true;
  const r = await api('contact?q=' + encodeURIComponent(q), { allow: [404] });
  if (r.status === 404) {
    $('contact-error').hidden = false;
    $('contact-error').textContent = 'No contact has that speak4_id, ghl_id or email.';
    $('contact-head').replaceChildren();
    $('contact-timeline').replaceChildren();
    return;
  }
  const c = r.body.contact;
  $('contact-head').replaceChildren(el('p', {}, el('strong', {}, c.name || '(no name)'),
    ' · speak4 ' + (c.speak4_id || '–') + ' · ghl ' + (c.ghl_id || '–') + ' · ' + (c.email || 'no email') +
    (c.deleted ? ' · deleted' : '')));
  $('contact-timeline').replaceChildren(...r.body.timeline.map((e) => {
    const [line, detail] = describe(e);
    return el('li', { class: e.kind }, el('span', { class: 'when' }, fmtTime(e.ts)), line, detail ? el('pre', {}, detail) : null);
  }));
}

// --- wiring -------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    try {
      await api('overview');
    } catch (e) {
      showLogin(e instanceof unauthorized ? 'The token was refused.' : 'The daemon did not answer: ' + e.message);
      return;
    }
    if (!location.hash) location.hash = '#overview';
    show();
  });
  $('logout').addEventListener('click', () => showLogin());
  $('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); auditBefore = null; loadAudit(false).catch(report); });
  $('audit-more').addEventListener('click', () => loadAudit(true).catch(report));
  $('contact-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadContact().catch(report); });
  $('series-minutes').addEventListener('change', () => show());
  window.addEventListener('hashchange', show);
  show();
});

function report(e) {
  if (e instanceof unauthorized) showLogin('The token was refused.');
  else setText('refreshed', e.message);
}
