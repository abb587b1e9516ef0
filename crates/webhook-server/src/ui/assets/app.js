// The dashboard: reads and acts through the admin API only (same origin, session cookie,
// CSRF token echoed on every changing request). Untrusted text is only ever set with
// textContent, never parsed as HTML.
'use strict';

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const SVG_NS = 'http://www.w3.org/2000/svg';
const OUTCOME_COLORS = {
  accepted: '#2e7d32', rejected: '#c62828', duplicate: '#6a1b9a',
  filtered: '#f9a825', answered: '#1565c0', failed: '#ef6c00',
};

// ---- helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') init.headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign('/ui');
    throw new Error('signed out');
  }
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok && response.status !== 207) {
    throw new Error((data && data.detail) || `${method} ${path}: ${response.status}`);
  }
  return data;
}

function say(text, isError) {
  const message = document.getElementById('message');
  message.textContent = text;
  message.className = isError ? 'message error' : 'message';
  message.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { message.hidden = true; }, 6000);
}

function formQuery(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (value === '') continue;
    if (form.elements[key] && form.elements[key].type === 'datetime-local') {
      params.set(key, new Date(value).toISOString());
    } else {
      params.set(key, value);
    }
  }
  return params;
}

function time(text) {
  if (!text) return '';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? text : date.toLocaleString();
}

function bytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function ms(n) {
  return n === undefined || n === null ? '' : `${Number(n).toFixed(n < 10 ? 2 : 0)} ms`;
}

// ---- tabs ------------------------------------------------------------------------------

const loaders = {};

function show(tab) {
  for (const page of document.querySelectorAll('.page')) page.hidden = page.id !== tab;
  for (const button of document.querySelectorAll('.tab')) {
    button.classList.toggle('active', button.dataset.tab === tab);
  }
  if (window.location.hash !== `#${tab}`) history.replaceState(null, '', `#${tab}`);
  if (loaders[tab]) loaders[tab]().catch((err) => say(err.message, true));
}

// ---- overview --------------------------------------------------------------------------

let knownWebhooks = [];

loaders.overview = async function loadOverview() {
  const [overview, summary] = await Promise.all([
    api('GET', '/admin/overview'),
    api('GET', `/admin/summary?since=${new Date(Date.now() - Number(document.getElementById('overview-window').value) * 1000).toISOString()}`).catch(() => null),
  ]);
  const cards = document.getElementById('cards');
  const spool = overview.spool || {};
  const card = (label, value, id) => el('div', { class: 'card', id }, el('span', { class: 'value' }, value), el('span', { class: 'label' }, label));
  cards.replaceChildren(
    card('spool entries', spool.entries ?? '—', 'card-spool-entries'),
    card('spool bytes', spool.bytes === undefined ? '—' : bytes(spool.bytes), 'card-spool-bytes'),
    card('oldest pending', spool.oldest_pending_age_s == null ? 'none' : `${spool.oldest_pending_age_s.toFixed(1)} s`, 'card-oldest'),
    card('dead letters', overview.dead_letters ?? '—', 'card-dead-letters'),
    card('health', (overview.health && overview.health.status) || '—', 'card-health'),
    card('requests kept', summary ? summary.kept : 'history off', 'card-kept'),
  );

  const healthOf = {};
  const reported = (overview.health && overview.health.destinations) || {};
  for (const [webhook, list] of Object.entries(reported)) {
    for (const entry of list) healthOf[`${webhook}/${entry.module}`] = entry;
  }
  knownWebhooks = Object.keys(reported).sort();
  fillTestWebhooks();

  const body = document.querySelector('#webhooks-table tbody');
  body.replaceChildren();
  if (summary) {
    document.getElementById('summary-since').textContent = `since ${time(summary.since)}`;
    for (const [webhook, counts] of Object.entries(summary.webhooks)) {
      const outcomes = counts.outcomes || {};
      const reasons = Object.entries(counts.reasons || {}).map(([r, n]) => `${r}: ${n}`).join(', ');
      body.append(el('tr', { 'data-webhook': webhook },
        el('td', {}, webhook), el('td', {}, counts.received), el('td', {}, outcomes.accepted || 0),
        el('td', { class: 'reasons' }, `${outcomes.rejected || 0}${reasons ? ` (${reasons})` : ''}`),
        el('td', {}, outcomes.duplicate || 0), el('td', {}, outcomes.filtered || 0),
        el('td', {}, ms(counts.latency_ms && counts.latency_ms.p50)),
        el('td', {}, ms(counts.latency_ms && counts.latency_ms.p99)),
        el('td', {}, chart(counts.series || [], summary.since, summary.bucket_seconds))));
    }
  }
  if (!body.children.length) {
    body.append(el('tr', {}, el('td', { colspan: 9, class: 'empty' }, summary ? 'No requests in the last 24 hours.' : 'The request history is off (--history on).')));
  }

  const destinations = document.querySelector('#destinations-table tbody');
  destinations.replaceChildren();
  const rows = overview.destinations || [];
  const seen = new Set(rows.map((r) => `${r.webhook}/${r.destination}`));
  for (const key of Object.keys(healthOf)) {
    if (!seen.has(key)) {
      const [webhook, destination] = key.split('/');
      rows.push({ webhook, destination });
    }
  }
  for (const row of rows) {
    const health = healthOf[`${row.webhook}/${row.destination}`];
    const status = health ? health.status : '—';
    destinations.append(el('tr', {},
      el('td', {}, row.webhook), el('td', {}, row.destination),
      el('td', { class: `health ${status}`, title: (health && health.error) || '' }, status),
      el('td', {}, row.in_flight ?? 0), el('td', {}, row.delivered ?? 0), el('td', {}, row.failed ?? 0),
      el('td', {}, row.retries ?? 0), el('td', {}, row.dead_lettered ?? 0)));
  }
};

// A stacked bar per time bucket, one colour per outcome.
function chart(series, since, bucketSeconds) {
  const width = 240;
  const height = 40;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const totals = series.map((p) => Object.entries(p).filter(([k]) => k !== 'at').reduce((s, [, v]) => s + v, 0));
  const max = Math.max(1, ...totals);
  const slot = width / 60;
  const start = new Date(since).getTime();
  series.forEach((point) => {
    const index = Math.max(0, Math.round((new Date(point.at).getTime() - start) / (bucketSeconds * 1000)));
    let y = height;
    for (const [outcome, color] of Object.entries(OUTCOME_COLORS)) {
      const n = point[outcome] || 0;
      if (!n) continue;
      const h = (n / max) * height;
      y -= h;
      const rect = document.createElementNS(SVG_NS, 'rect');
      rect.setAttribute('x', String(Math.min(index, 59) * slot));
      rect.setAttribute('y', String(y));
      rect.setAttribute('width', String(Math.max(1, slot - 1)));
      rect.setAttribute('height', String(h));
      rect.setAttribute('fill', color);
      const title = document.createElementNS(SVG_NS, 'title');
      title.textContent = `${time(point.at)}: ${n} ${outcome}`;
      rect.append(title);
      svg.append(rect);
    }
  });
  return svg;
}

// ---- request log -----------------------------------------------------------------------

let nextBefore = null;

loaders.requests = async function loadRequests() {
  await listRequests(false);
};

async function listRequests(more) {
  const params = formQuery(document.getElementById('request-filters'));
  if (more && nextBefore !== null) params.set('before', nextBefore);
  const data = await api('GET', `/admin/requests?${params}`);
  const body = document.querySelector('#requests-table tbody');
  if (!more) body.replaceChildren();
  for (const r of data.requests) {
    const row = el('tr', {
      class: `outcome-${r.outcome}`, 'data-request-id': r.request_id, tabindex: 0,
      onclick: () => inspect(r.request_id).catch((err) => say(err.message, true)),
    },
    el('td', {}, time(r.received_at)), el('td', {}, r.webhook), el('td', { class: 'status' }, r.status),
    el('td', {}, r.outcome), el('td', { class: 'reason' }, r.reason || ''), el('td', {}, ms(r.latency_ms)),
    el('td', {}, bytes(r.body_size)), el('td', {}, el('code', {}, r.request_id)));
    body.append(row);
  }
  if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No request matches.')));
  nextBefore = data.next_before;
  document.getElementById('more').hidden = nextBefore === null || nextBefore === undefined;
}

let inspected = null;

async function inspect(requestId) {
  const r = await api('GET', `/admin/requests/${encodeURIComponent(requestId)}`);
  inspected = r;
  document.getElementById('inspector-id').textContent = r.request_id;
  const fields = document.getElementById('inspector-fields');
  fields.replaceChildren();
  for (const [label, value] of [
    ['Webhook', r.webhook], ['Received', time(r.received_at)], ['Client IP', r.client_ip],
    ['Method', r.method], ['Status', r.status], ['Outcome', r.outcome], ['Reason', r.reason || '—'],
    ['Latency', ms(r.latency_ms)], ['Body size', bytes(r.body_size)], ['Delivery id', r.delivery_id || '—'],
    ['Ack', r.ack],
  ]) fields.append(el('dt', {}, label), el('dd', {}, value));

  const verification = document.getElementById('inspector-verification');
  if (r.outcome === 'rejected') {
    verification.className = 'verification failed';
    verification.textContent = `Refused with ${r.status}: ${r.reason || 'no reason recorded'}`;
  } else {
    verification.className = 'verification passed';
    verification.textContent = `Passed every validator (${r.outcome}${r.reason ? `: ${r.reason}` : ''})`;
  }

  const timeline = document.getElementById('inspector-timeline');
  timeline.replaceChildren();
  const destinations = r.destinations || [];
  if (!destinations.length) timeline.append(el('p', { class: 'empty' }, 'No delivery attempt recorded.'));
  for (const d of destinations) {
    const attempts = (r.attempts || []).filter((a) => a.destination === d.destination);
    timeline.append(el('div', { class: 'destination', 'data-destination': d.destination },
      el('h4', {}, `#${d.destination} ${d.module} `, el('span', { class: `state ${d.state}` }, d.state),
        d.next_retry ? el('small', {}, ` next retry ${time(d.next_retry)}`) : null),
      el('ol', { class: 'timeline' }, attempts.map((a) => el('li', { class: `attempt ${a.state}` },
        el('span', { class: 'when' }, time(a.at)), ' ',
        el('strong', {}, a.attempt === 0 ? a.state : `attempt ${a.attempt}: ${a.state}`), ' ',
        el('span', {}, ms(a.duration_ms)),
        a.error_class ? el('span', { class: 'error-class' }, ` ${a.error_class}`) : null,
        a.error ? el('div', { class: 'error' }, a.error) : null)))));
  }
  document.getElementById('replay').hidden = !destinations.some((d) => d.state === 'dead_letter');

  const headers = document.querySelector('#inspector-headers tbody');
  headers.replaceChildren();
  for (const [name, value] of Object.entries(r.headers || {})) {
    headers.append(el('tr', {}, el('th', {}, name), el('td', {}, value)));
  }
  const body = document.getElementById('inspector-body');
  if (!r.body_kept) {
    body.textContent = 'Not kept (the webhook keeps bodies with "history": {"bodies": true}).';
  } else if (r.body !== undefined) {
    let text = r.body;
    try { text = JSON.stringify(JSON.parse(r.body), null, 2); } catch (_) { /* not JSON */ }
    body.textContent = text + (r.body_truncated ? '\n… (cut at the size cap)' : '');
  } else {
    body.textContent = hexDump(atob(r.body_base64 || ''));
  }
  document.getElementById('inspector').hidden = false;
}

function hexDump(binary) {
  const lines = [];
  for (let offset = 0; offset < binary.length; offset += 16) {
    const chunk = binary.slice(offset, offset + 16);
    const hex = Array.from(chunk, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ');
    const text = Array.from(chunk, (c) => (c.charCodeAt(0) >= 32 && c.charCodeAt(0) < 127 ? c : '.')).join('');
    lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
  return lines.join('\n');
}

// ---- live events -----------------------------------------------------------------------

let refreshTimer = null;

function followEvents() {
  const live = document.getElementById('live');
  const source = new EventSource('/admin/events');
  source.onopen = () => { live.className = 'live on'; };
  source.onerror = () => { live.className = 'live off'; };
  const changed = (event) => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      const tab = window.location.hash.slice(1) || 'overview';
      if (tab === 'requests') listRequests(false).catch(() => {});
      if (tab === 'overview') loaders.overview().catch(() => {});
      if (tab === 'dead-letters') loaders['dead-letters']().catch(() => {});
      if (inspected && event.type === 'attempt') {
        try {
          if (JSON.parse(event.data).request_id === inspected.request_id) inspect(inspected.request_id).catch(() => {});
        } catch (_) { /* ignore */ }
      }
    }, 250);
  };
  source.addEventListener('request', changed);
  source.addEventListener('attempt', changed);
}

// ---- dead letters ----------------------------------------------------------------------

loaders['dead-letters'] = async function loadDeadLetters() {
  const params = formQuery(document.getElementById('dead-letter-filters'));
  const data = await api('GET', `/admin/dead-letters?${params}`);
  const body = document.querySelector('#dead-letters-table tbody');
  body.replaceChildren();
  for (const d of data.dead_letters) {
    body.append(el('tr', { 'data-id': d.id },
      el('td', {}, time(d.dead_at)), el('td', {}, d.webhook), el('td', {}, `#${d.destination} ${d.module}`),
      el('td', {}, d.attempts), el('td', { class: 'error' }, d.error), el('td', {}, bytes(d.body_bytes)),
      el('td', {}, el('code', {}, d.request_id)),
      el('td', {},
        d.damaged ? el('span', { class: 'state failed' }, 'damaged') : el('button', { class: 'replay-one', onclick: () => act('POST', `/admin/dead-letters/${encodeURIComponent(d.id)}/replay`, 'Replayed') }, 'Replay'),
        ' ',
        el('button', { class: 'danger delete-one', onclick: () => act('DELETE', `/admin/dead-letters/${encodeURIComponent(d.id)}`, 'Deleted') }, 'Delete'))));
  }
  if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No dead letter matches.')));
};

async function act(method, path, done) {
  try {
    const result = await api(method, path);
    const count = result && result.count !== undefined ? ` ${result.count}` : '';
    const failed = result && result.failed && result.failed.length ? ` (${result.failed.length} failed)` : '';
    say(`${done}${count}${failed}.`, Boolean(failed));
  } catch (err) {
    say(err.message, true);
  }
  await loaders['dead-letters']().catch(() => {});
}

async function bulk(method, path, verb) {
  const params = formQuery(document.getElementById('dead-letter-filters'));
  if (![...params.keys()].length) params.set('all', 'true');
  if (!window.confirm(`${verb} every dead letter matching ${params.has('all') ? '(all of them)' : params.toString()}?`)) return;
  await act(method, `${path}?${params}`, verb === 'Replay' ? 'Replayed' : 'Deleted');
}

// ---- test ------------------------------------------------------------------------------

function fillTestWebhooks() {
  const select = document.getElementById('test-webhook');
  const chosen = select.value;
  select.replaceChildren(...knownWebhooks.map((id) => el('option', { value: id }, id)));
  if (knownWebhooks.includes(chosen)) select.value = chosen;
}

loaders.test = async function loadTest() {
  if (!knownWebhooks.length) await loaders.overview();
};

async function runTest(event) {
  event.preventDefault();
  const form = event.target;
  const headers = {};
  for (const line of form.elements.headers.value.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  const sample = {
    method: form.elements.method.value || 'POST',
    query: form.elements.query.value || null,
    headers,
    body: form.elements.body.value,
    verify: form.elements.verify.checked,
  };
  const out = document.getElementById('test-result');
  out.replaceChildren();
  try {
    const report = await api('POST', `/admin/webhooks/${encodeURIComponent(form.elements.webhook.value)}/test`, sample);
    let verdict;
    if (report.verified === false) {
      const r = report.rejected || {};
      verdict = `Refused with ${r.status || '4xx'} by ${r.validator || 'a validator'}: ${r.reason || 'no reason'}`;
    } else if (report.error) {
      verdict = report.error;
    } else {
      verdict = `${report.verified === null ? 'Validators not run' : 'Passed the validators'}${report.filtered ? ', then filtered out' : ''}`;
    }
    out.append(el('p', { class: report.verified === false || report.error ? 'verification failed' : 'verification passed', id: 'test-verdict' }, verdict));
    for (const d of report.destinations || []) {
      out.append(el('div', { class: 'destination' }, el('h4', {}, `#${d.index} ${d.module}: `, el('span', { class: `state ${d.outcome}` }, d.outcome)),
        d.error ? el('div', { class: 'error' }, d.error) : null,
        d.body !== undefined ? el('pre', {}, typeof d.body === 'string' ? d.body : JSON.stringify(d.body, null, 2)) : null));
    }
    out.append(el('details', {}, el('summary', {}, 'The whole report'), el('pre', {}, JSON.stringify(report, null, 2))));
  } catch (err) {
    out.append(el('p', { class: 'verification failed', id: 'test-verdict' }, err.message));
  }
}

// ---- start -----------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  for (const button of document.querySelectorAll('.tab')) {
    button.addEventListener('click', () => show(button.dataset.tab));
  }
  document.getElementById('request-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    listRequests(false).catch((err) => say(err.message, true));
  });
  document.getElementById('request-filters').addEventListener('reset', () => {
    setTimeout(() => listRequests(false).catch((err) => say(err.message, true)), 0);
  });
  document.getElementById('overview-window').addEventListener('change', () => loaders.overview().catch((err) => say(err.message, true)));
  document.getElementById('more').addEventListener('click', () => listRequests(true).catch((err) => say(err.message, true)));
  document.getElementById('inspector-close').addEventListener('click', () => {
    document.getElementById('inspector').hidden = true;
    inspected = null;
  });
  document.getElementById('replay').addEventListener('click', async () => {
    if (!inspected) return;
    try {
      const result = await api('POST', `/admin/dead-letters/replay?request_id=${encodeURIComponent(inspected.request_id)}`);
      say(`Replayed ${result.count} dead letter(s).`);
      setTimeout(() => inspect(inspected.request_id).catch(() => {}), 500);
    } catch (err) {
      say(err.message, true);
    }
  });
  document.getElementById('dead-letter-filters').addEventListener('submit', (event) => {
    event.preventDefault();
    loaders['dead-letters']().catch((err) => say(err.message, true));
  });
  document.getElementById('replay-matching').addEventListener('click', () => bulk('POST', '/admin/dead-letters/replay', 'Replay'));
  document.getElementById('delete-matching').addEventListener('click', () => bulk('DELETE', '/admin/dead-letters', 'Delete'));
  document.getElementById('test-form').addEventListener('submit', runTest);
  document.getElementById('logout').addEventListener('click', async () => {
    await fetch('/ui/logout', { method: 'POST', headers: { 'X-CSRF-Token': CSRF }, credentials: 'same-origin' });
    window.location.assign('/ui');
  });
  followEvents();
  show(window.location.hash.slice(1) || 'overview');
});
