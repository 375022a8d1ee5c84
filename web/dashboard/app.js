// The intake dashboard: plain JS, no framework, no build step. Every POLL_MS it reads
// GET /v1/cluster (nodes, modes, leader, readiness, backlog, heartbeat age, running totals,
// schema) and GET /v1/callbacks/dead|waiting, and turns the nodes' running totals into rates.
// Data endpoints need an admin key once the cluster has keys: the page asks for one, keeps it in
// sessionStorage (this tab only) and sends it as `Authorization: Bearer`. Data is only ever put
// into the page as text, never as HTML (callback URLs come from clients).
'use strict';

const POLL_MS = 2000;
/** Points in each chart: two minutes at POLL_MS. */
const HISTORY = 60;
const KEY_ITEM = 'intake.adminKey';

const RATES = [
  { id: 'ingest', label: 'ingest', help: 'requests accepted (202)', total: (c) => c.accepted },
  { id: 'drain', label: 'drain', help: 'records drained into the database', total: (c) => c.drained },
  { id: 'processing', label: 'processing', help: 'requests completed by processors', total: (c) => c.completed },
  { id: 'callbacks', label: 'callbacks delivered', help: 'callbacks answered 2xx', total: (c) => c.callbacks_delivered },
  { id: 'callbacks-failed', label: 'callbacks failed', help: 'callback attempts that failed (parked, dead, 410)', total: (c) => c.callbacks_failed },
];

const $ = (id) => document.getElementById(id);
const history = Object.fromEntries(RATES.map((r) => [r.id, []]));
/** Per node: the last totals seen (by process, so a restart starts afresh) and the rates from them. */
const lastSeen = new Map();
let timer = null;
let keyRequired = false;

function key() {
  return sessionStorage.getItem(KEY_ITEM);
}

class HttpError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(path, method = 'GET') {
  const headers = {};
  const k = key();
  if (k) headers.authorization = `Bearer ${k}`;
  const res = await fetch(path, { method, headers, cache: 'no-store' });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) throw new HttpError(res.status, body);
  return body;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function showProblem(msg) {
  const p = $('problem');
  p.textContent = msg ?? '';
  p.hidden = !msg;
}

function askForKey(msg) {
  stop();
  $('main').hidden = true;
  $('forget').hidden = true;
  $('key-form').hidden = false;
  $('summary').textContent = 'an admin key is needed';
  showProblem(msg);
  $('key').focus();
}

/** A rate per second from two samples of one process's totals; null when it cannot be told. */
function rate(prev, cur, pick) {
  const dt = cur.uptime_ms - prev.uptime_ms;
  if (!(dt > 0)) return null;
  return Math.max(0, (pick(cur) - pick(prev)) / (dt / 1000));
}

function nodeRates(n) {
  if (!n.counters) return null;
  const id = `${n.id}@${n.started_at}`;
  const seen = lastSeen.get(n.id);
  if (!seen || seen.id !== id || n.counters.uptime_ms < seen.counters.uptime_ms) {
    lastSeen.set(n.id, { id, counters: n.counters, rates: null });
    return null;
  }
  if (n.counters.uptime_ms === seen.counters.uptime_ms) return seen.rates; // no new heartbeat yet
  const rates = Object.fromEntries(RATES.map((r) => [r.id, rate(seen.counters, n.counters, r.total)]));
  lastSeen.set(n.id, { id, counters: n.counters, rates });
  return rates;
}

const fmtRate = (x) => (x === null || x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtMs = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
const yesNo = (b) => (b ? 'yes' : 'no');

function renderNodes(view) {
  const tbody = $('nodes').tBodies[0];
  tbody.replaceChildren();
  const totals = Object.fromEntries(RATES.map((r) => [r.id, null]));
  for (const n of view.nodes) {
    const r = nodeRates(n);
    if (r && n.live) for (const k of Object.keys(totals)) if (r[k] !== null) totals[k] = (totals[k] ?? 0) + r[k];
    const tr = el('tr', undefined, n.live ? '' : 'dead');
    tr.dataset.node = n.id;
    tr.append(
      el('td', n.id, 'node-id'),
      el('td', n.live ? 'yes' : 'DEAD', n.live ? 'ok' : 'bad'),
      el('td', n.leader ? '★' : ''),
      el('td', n.mode_error ? `${n.mode} (${n.mode_error})` : n.mode, 'mode'),
      el('td', n.drained ? 'drained' : yesNo(n.ready), n.ready && !n.drained ? 'ok' : 'warn'),
      el('td', n.backlog_segments, n.backlog_segments > 0 ? 'warn num' : 'num'),
      el('td', fmtMs(n.heartbeat_age_ms), 'num'),
      el('td', fmtRate(r?.ingest), 'num'),
      el('td', n.version),
      el('td', n.url, 'muted'),
    );
    tbody.append(tr);
  }
  const live = view.nodes.filter((n) => n.live).length;
  $('summary').textContent = `${live} live node${live === 1 ? '' : 's'} of ${view.nodes.length}, desired-mode generation ${view.generation}`;
  $('leader').textContent = view.leader ? `leader: ${view.leader}` : 'no leader';
  return totals;
}

function chart(points) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 200;
  const H = 40;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  const known = points.filter((p) => p !== null);
  const max = Math.max(1, ...known);
  const xy = points
    .map((p, i) => (p === null ? null : `${((i / (HISTORY - 1)) * W).toFixed(1)},${(H - 2 - (p / max) * (H - 4)).toFixed(1)}`))
    .filter(Boolean);
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', xy.join(' '));
  svg.append(line);
  return svg;
}

function renderRates(totals) {
  const box = $('rates');
  box.replaceChildren();
  for (const r of RATES) {
    const h = history[r.id];
    h.push(totals[r.id]);
    if (h.length > HISTORY) h.shift();
    const padded = Array(HISTORY - h.length).fill(null).concat(h);
    const card = el('div', undefined, 'rate');
    card.dataset.rate = r.id;
    card.title = r.help;
    card.append(el('div', r.label, 'rate-label'), el('div', fmtRate(totals[r.id]), 'rate-value'), chart(padded));
    box.append(card);
  }
}

function renderSchema(s) {
  const b = $('schema');
  if (s === null || s === undefined) {
    b.textContent = 'schema: – (this node has no database: receive mode)';
    b.className = 'badge';
  } else if ('error' in s) {
    b.textContent = `schema: database unreachable (${s.error})`;
    b.className = 'badge bad';
  } else {
    b.textContent = `schema v${s.current}` + (s.current === s.latest ? '' : ` (this build knows v${s.latest}: run intake migrate)`);
    b.className = s.current === s.latest ? 'badge' : 'badge warn';
  }
}

function renderBooks(b) {
  const badge = $('books');
  if (b === null || b === undefined) {
    badge.textContent = 'books: not taken yet';
    badge.className = 'badge';
    badge.title = 'one save-mode node takes them every --books-interval-ms';
    return;
  }
  const t = b.total;
  const c = b.callbacks;
  badge.textContent = b.balanced ? 'books balance' : `books: ${b.difference_count} difference${b.difference_count === 1 ? '' : 's'}`;
  badge.className = b.balanced ? 'badge' : 'badge bad';
  badge.title = [
    `taken ${new Date(b.taken_at).toLocaleString()} by ${b.taken_by} in ${b.duration_ms} ms`,
    `accepted ${t.accepted} = stored ${t.stored} + in spool ${t.in_spool} + quarantined ${t.quarantined}`,
    `callbacks: completed ${c.completed} = delivered ${c.delivered} + pending ${c.pending} + parked ${c.parked} + dead ${c.dead} + gone ${c.gone}`,
    ...b.differences,
  ].join('\n');
}

async function replayOne(id, button) {
  button.disabled = true;
  button.textContent = 'replaying…';
  try {
    await api(`/v1/callbacks/${encodeURIComponent(id)}/replay`, 'POST');
    button.textContent = 'replayed';
    await refreshCallbacks();
  } catch (err) {
    button.disabled = false;
    button.textContent = 'replay';
    if (err.status === 401) return askForKey(err.message);
    showProblem(`replay of ${id} failed: ${err.message}`);
  }
}

async function refreshCallbacks() {
  const [dead, waiting] = await Promise.all([api('/v1/callbacks/dead?limit=100'), api('/v1/callbacks/waiting?limit=1')]);
  $('dead-count').textContent = `(${dead.total}${dead.total > dead.callbacks.length ? `, the first ${dead.callbacks.length} shown` : ''})`;
  $('waiting-count').textContent = `${waiting.total} callback${waiting.total === 1 ? '' : 's'} waiting for a retry.`;
  const tbody = $('dead').tBodies[0];
  tbody.replaceChildren();
  if (dead.callbacks.length === 0) {
    const td = el('td', 'none', 'muted');
    td.colSpan = 6;
    const tr = el('tr');
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const c of dead.callbacks) {
    const tr = el('tr');
    tr.dataset.callback = c.id;
    const button = el('button', 'replay', 'replay');
    button.type = 'button';
    button.addEventListener('click', () => void replayOne(c.id, button));
    const action = el('td');
    action.append(button);
    tr.append(
      el('td', c.id, 'mono'),
      el('td', c.url, 'mono'),
      el('td', c.attempts, 'num'),
      el('td', c.last_status ?? c.last_error ?? '–'),
      el('td', new Date(c.first_failed_at).toLocaleString()),
      action,
    );
    tbody.append(tr);
  }
}

async function refresh() {
  try {
    const view = await api('/v1/cluster');
    renderRates(renderNodes(view));
    renderSchema(view.schema);
    renderBooks(view.books);
    await refreshCallbacks();
    $('main').hidden = false;
    $('forget').hidden = !keyRequired;
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    showProblem(null);
  } catch (err) {
    if (err.status === 401) return askForKey(key() ? `the key was refused: ${err.message}` : null);
    if (err.status === 403) return askForKey(`this key cannot open the dashboard: ${err.message}`);
    showProblem(`could not reach the node: ${err.message} (retrying)`);
  }
}

function stop() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
}

function poll() {
  stop();
  // One poll at a time: the next starts POLL_MS after the last one ended.
  void refresh().finally(() => {
    if ($('key-form').hidden) timer = setTimeout(poll, POLL_MS);
  });
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const k = $('key').value.trim();
  if (!k) return;
  sessionStorage.setItem(KEY_ITEM, k);
  $('key').value = '';
  $('key-form').hidden = true;
  showProblem(null);
  poll();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_ITEM);
  askForKey(null);
});

// Whether the cluster has keys at all is public (every data endpoint would say so anyway): the
// page asks first, so that it never sends a request that it knows will be refused.
(async () => {
  try {
    keyRequired = (await api('/dashboard/auth')).key_required === true;
  } catch (err) {
    showProblem(`could not reach the node: ${err.message}`);
  }
  if (keyRequired && !key()) askForKey(null);
  else poll();
})();
