// Swiftlet dashboard: a single-page app over the /api/v5 REST API (docs/api.md).
// No build step and no third-party code. Runs under a strict Content-Security-Policy
// (default-src 'self'): no inline scripts, no inline event handlers, no eval, no style
// attributes (element.style set from here is fine). The DOM is built with createElement
// and textContent only, so nothing the broker reports (client ids, topics) is parsed as HTML.
'use strict';

(() => {
  const API = '/api/v5';
  const REFRESH_MS = 3000;             // list pages reload this often while visible
  const HISTORY_SEC = 15 * 60;         // monitor samples kept for the charts
  const STREAM_STALL_MS = 5000;        // no monitor event for this long: the stream is dead
  const STREAM_RETRY_MS = 30000;       // while polling, try the stream again this often

  // -- session (token in sessionStorage: gone when the tab closes) -------------------------
  const store = window.sessionStorage;
  const session = {
    get token() { return store.getItem('swiftlet.token'); },
    get csrf() { return store.getItem('swiftlet.csrf'); },
    get username() { return store.getItem('swiftlet.username'); },
    get mustChange() { return store.getItem('swiftlet.pwchange') === '1'; },
    set(login, username) {
      store.setItem('swiftlet.token', login.token);
      if (login.csrf_token) store.setItem('swiftlet.csrf', login.csrf_token);
      else store.removeItem('swiftlet.csrf');
      store.setItem('swiftlet.username', username);
      store.setItem('swiftlet.pwchange', login.password_change_required ? '1' : '0');
    },
    passwordChanged() { store.setItem('swiftlet.pwchange', '0'); },
    requireChange() { store.setItem('swiftlet.pwchange', '1'); },
    clear() {
      for (const k of ['swiftlet.token', 'swiftlet.csrf', 'swiftlet.username', 'swiftlet.pwchange']) store.removeItem(k);
    },
  };
  // The password typed at login, kept in memory only until the forced change uses it.
  let loginPassword = null;

  // -- DOM helpers ----------------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  const $ = (sel, root = document) => root.querySelector(sel);

  function fmtNum(v, digits = 0) {
    if (v === null || v === undefined || v === '') return '–';
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }
  function fmtRate(v) { return fmtNum(v, Number(v) < 10 ? 1 : 0); }
  function fmtBytes(v) {
    const n = Number(v);
    if (!Number.isFinite(n)) return v === undefined ? '–' : String(v);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, x = n;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return `${x.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  function fmtDuration(v) {
    if (typeof v === 'string' && !/^\d+(\.\d+)?$/.test(v)) return v;
    let s = Math.floor(Number(v));
    if (!Number.isFinite(s)) return '–';
    const d = Math.floor(s / 86400); s %= 86400;
    const hh = Math.floor(s / 3600); s %= 3600;
    const mm = Math.floor(s / 60); s %= 60;
    return (d ? `${d}d ` : '') + (d || hh ? `${hh}h ` : '') + (d || hh || mm ? `${mm}m ` : '') + `${s}s`;
  }
  function fmtTime(v) {
    if (v === null || v === undefined || v === '' || v === 'infinity') return v === 'infinity' ? 'never' : '–';
    const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
    return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleString();
  }
  function yesNo(v) { return h('span', { class: `badge ${v ? 'ok' : 'off'}` }, v ? 'yes' : 'no'); }
  function badge(text, kind) { return h('span', { class: `badge ${kind || ''}` }, text); }
  function scalar(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (Array.isArray(v)) return v.map(scalar).join(', ');
    if (typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k}=${scalar(x)}`).join(' ');
    return String(v);
  }
  // Base64 payload -> text for display (or a hex preview when it is not UTF-8).
  function decodePayload(b64) {
    if (b64 === null || b64 === undefined) return '';
    let bytes;
    try { bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)); } catch (_) { return String(b64); }
    try { return new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch (_) {
      return `0x${Array.from(bytes.slice(0, 64), (b) => b.toString(16).padStart(2, '0')).join('')}${bytes.length > 64 ? '…' : ''}`;
    }
  }
  // Lists come as {data, meta}; a few endpoints answer a bare array or {rules: [...]}.
  function rowsOf(resp) {
    if (Array.isArray(resp)) return resp;
    if (resp && Array.isArray(resp.data)) return resp.data;
    if (resp && Array.isArray(resp.rules)) return resp.rules;
    return [];
  }

  // -- API ----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message || code || `HTTP ${status}`);
      this.status = status; this.code = code || `HTTP_${status}`; this.retryAfter = retryAfter;
    }
  }
  function describe(e) {
    if (e instanceof ApiError) return `${e.code}: ${e.message}`;
    return String(e && e.message || e);
  }

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    if (session.token && !opts.noAuth) headers.Authorization = `Bearer ${session.token}`;
    if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(API + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin', cache: 'no-store', signal: opts.signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      setLive('offline');
      throw new ApiError(0, 'NETWORK', 'the broker does not answer');
    }
    const text = await resp.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (_) { data = { message: text }; } }
    if (resp.ok) return data;
    const err = new ApiError(resp.status, data && data.code, data && data.message, resp.headers.get('Retry-After'));
    if (!opts.noAuth) handleAuthError(err);
    throw err;
  }
  const get = (path, opts) => api('GET', path, undefined, opts);
  const enc = encodeURIComponent;
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  // 401: the session is over; 403 PASSWORD_CHANGE_REQUIRED: the forced change first.
  function handleAuthError(err) {
    if (err.status === 401) {
      session.clear();
      stopMonitor();
      if (currentRoute().name !== 'login') {
        pendingNotice = err.code === 'TOKEN_TIME_OUT' ? 'Your session has expired: please log in again.' : 'Please log in.';
        go('login');
      }
    } else if (err.status === 403 && err.code === 'PASSWORD_CHANGE_REQUIRED') {
      session.requireChange();
      if (currentRoute().name !== 'change-password') go('change-password');
    }
  }

  // -- toasts and dialogs -------------------------------------------------------------------
  let toastTimer = null;
  function toast(message, kind = 'info') {
    const t = $('#toast');
    clear(t).append(h('div', { class: `toast ${kind}` }, message));
    t.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('show'), kind === 'error' ? 8000 : 4000);
  }

  // Opens the dialog with `content`; resolves with the value passed to close(), or null.
  function openDialog(title, build) {
    const dlg = $('#dialog');
    return new Promise((resolve) => {
      let done = false;
      const close = (v) => {
        if (done) return;
        done = true;
        dlg.removeEventListener('close', onClose);
        if (dlg.open) dlg.close();
        clear(dlg);
        resolve(v);
      };
      // A 'close' event is queued, so one from the previous dialog may arrive after this one
      // opened: only a close that left the dialog shut (Escape) counts.
      const onClose = () => { if (!dlg.open) close(null); };
      clear(dlg).append(h('div', { class: 'dialog-head' },
        h('h2', null, title),
        h('button', { type: 'button', class: 'icon-button close', 'aria-label': 'Close', onclick: () => close(null) }, '×')));
      dlg.append(h('div', { class: 'dialog-body' }, build(close)));
      dlg.addEventListener('close', onClose);
      dlg.showModal();
      const first = dlg.querySelector('input, select, textarea, button.primary');
      if (first) first.focus();
    });
  }
  function confirmDialog(message, okLabel = 'OK', danger = true) {
    return openDialog('Please confirm', (close) => [
      h('p', null, message),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', 'data-action': 'cancel', onclick: () => close(false) }, 'Cancel'),
        h('button', { type: 'button', class: danger ? 'danger primary' : 'primary', 'data-action': 'confirm', onclick: () => close(true) }, okLabel)),
    ]);
  }
  // A dialog with a form: fields [{name, label, type, value, required, options}]; onSubmit(values)
  // may throw to keep the dialog open with the error shown.
  function formDialog(title, fields, submitLabel, onSubmit) {
    return openDialog(title, (close) => {
      const err = h('p', { class: 'form-error', role: 'alert' });
      const f = buildForm(fields, submitLabel, async (values, form) => {
        err.textContent = '';
        try { close(await onSubmit(values) ?? true); } catch (e) { err.textContent = describe(e); form.querySelector('input')?.focus(); }
      });
      f.insertBefore(err, f.lastChild);
      f.lastChild.prepend(h('button', { type: 'button', class: 'secondary', onclick: () => close(null) }, 'Cancel'));
      return f;
    });
  }

  // -- forms --------------------------------------------------------------------------------
  function field(spec) {
    const id = `f-${spec.name}-${Math.random().toString(36).slice(2, 8)}`;
    let input;
    if (spec.type === 'select') {
      input = h('select', { id, name: spec.name },
        spec.options.map(([v, label]) => h('option', { value: v }, label)));
      if (spec.value !== undefined) input.value = String(spec.value);
    } else if (spec.type === 'checkbox') {
      input = h('input', { id, name: spec.name, type: 'checkbox', checked: !!spec.value });
      return h('label', { class: 'check', for: id }, input, ' ', spec.label);
    } else if (spec.type === 'textarea') {
      input = h('textarea', { id, name: spec.name, rows: spec.rows || 3, required: spec.required, placeholder: spec.placeholder }, spec.value ?? '');
    } else {
      input = h('input', {
        id, name: spec.name, type: spec.type || 'text', value: spec.value ?? '', required: spec.required,
        autocomplete: spec.autocomplete || 'off', placeholder: spec.placeholder, min: spec.min, max: spec.max,
        minlength: spec.minlength, inputmode: spec.inputmode, spellcheck: 'false',
      });
    }
    return h('div', { class: 'field' }, h('label', { for: id }, spec.label), input, spec.hint ? h('small', null, spec.hint) : null);
  }
  function formValues(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    }
    return out;
  }
  function buildForm(fields, submitLabel, onSubmit, cls = 'stack') {
    const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
    const form = h('form', { class: `form ${cls}`, novalidate: false },
      fields.map(field), h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try { await onSubmit(formValues(form), form); } finally { submit.disabled = false; }
    });
    return form;
  }

  // -- tables -------------------------------------------------------------------------------
  // columns: [{key, label, render(row) -> node|string, cls}]; key(row) names the row (data-key).
  function dataTable(columns, opts = {}) {
    const tbody = h('tbody');
    const table = h('table', { class: 'grid', dataset: { table: opts.name || '' } },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.cls, scope: 'col' }, c.label)))), tbody);
    const empty = h('p', { class: 'empty', hidden: true }, opts.empty || 'Nothing here.');
    const wrap = h('div', { class: 'table-wrap' }, table, empty);
    let last = null;
    wrap.update = (rows) => {
      // Unchanged data leaves the rows (and any button under the pointer) in place.
      const sig = JSON.stringify(rows);
      if (sig === last) return;
      last = sig;
      clear(tbody);
      for (const row of rows) {
        const tr = h('tr', { dataset: opts.key ? { key: opts.key(row) } : {} });
        if (opts.rowData) Object.assign(tr.dataset, opts.rowData(row));
        for (const c of columns) {
          const v = c.render ? c.render(row) : scalar(row[c.key]);
          tr.append(h('td', { class: c.cls, dataset: { label: c.label } }, v));
        }
        tbody.append(tr);
      }
      empty.hidden = rows.length > 0;
      table.classList.toggle('is-empty', rows.length === 0);
    };
    return wrap;
  }
  // Small button factory for row actions.
  function act(label, onclick, cls = 'secondary small', extra = {}) {
    return h('button', { type: 'button', class: cls, onclick, ...extra }, label);
  }
  function actions(...btns) { return h('div', { class: 'row-actions' }, btns); }

  // A paged list bound to an endpoint: the filter form feeds the query; refreshes live.
  function pagedList(ctx, { path, columns, key, rowData, filters = [], empty, name, limit = 50 }) {
    let page = 1;
    let params = {};
    const table = dataTable(columns, { key, rowData, empty, name });
    const info = h('span', { class: 'pager-info' });
    const prev = h('button', { type: 'button', class: 'secondary small', onclick: () => { page = Math.max(1, page - 1); load(); } }, '‹ Prev');
    const next = h('button', { type: 'button', class: 'secondary small', onclick: () => { page += 1; load(); } }, 'Next ›');
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    let filterForm = null;
    if (filters.length) {
      filterForm = buildForm(filters, 'Search', (values) => { params = values; page = 1; return load(); }, 'inline filters');
      filterForm.dataset.filters = name || '';
      const reset = h('button', { type: 'reset', class: 'secondary' }, 'Clear');
      filterForm.lastChild.append(reset);
      filterForm.addEventListener('reset', () => setTimeout(() => { params = formValues(filterForm); page = 1; load(); }));
      // Search as one types (debounced).
      let t = null;
      filterForm.addEventListener('input', () => {
        clearTimeout(t);
        t = setTimeout(() => { params = formValues(filterForm); page = 1; load(); }, 300);
      });
      params = formValues(filterForm);
    }
    let seq = 0;
    async function load() {
      const mine = ++seq;
      try {
        const base = path(params);
        const resp = await get(`${base}${base.includes('?') ? '&' : '?'}page=${page}&limit=${limit}`, { signal: ctx.signal });
        if (mine !== seq) return; // a later search (or refresh) has been sent since: its answer wins
        const rows = rowsOf(resp);
        const meta = (resp && resp.meta) || {};
        if (rows.length === 0 && page > 1 && !meta.hasnext) { page -= 1; return load(); }
        table.update(rows);
        const count = meta.count ?? rows.length;
        info.textContent = `${fmtNum(count)} total · page ${page}`;
        prev.disabled = page <= 1;
        next.disabled = !(meta.hasnext ?? (rows.length >= limit));
        error.hidden = true;
        ctx.loaded(table);
      } catch (e) {
        if (e.name === 'AbortError') return;
        error.textContent = `Could not load: ${describe(e)}`;
        error.hidden = false;
      }
    }
    ctx.every(REFRESH_MS, load);
    const el = h('div', { class: 'paged' }, filterForm, error, table, h('div', { class: 'pager' }, prev, info, next));
    el.reload = load;
    load();
    return el;
  }

  // -- live monitor: SSE over fetch (so the Bearer token goes along), polling as fallback ---
  const monitor = {
    samples: [],          // {t, received, sent, dropped, connections, subscriptions}
    listeners: new Set(),
    mode: 'idle',         // idle | stream | poll
    abort: null,
    timers: [],
    lastEvent: 0,
  };
  // A monitor object -> a chart sample; `time` (ms, when the server gives it) dates it.
  function sampleOf(m) {
    return {
      t: Number(m.time) || Date.now(),
      received: Number(m.received_msg_rate) || 0,
      sent: Number(m.sent_msg_rate) || 0,
      dropped: Number(m.dropped_msg_rate) || 0,
      connections: Number(m.connections) || 0,
      subscriptions: Number(m.subscriptions) || 0,
    };
  }
  function pushSample(m) {
    const s = sampleOf(m);
    const prev = monitor.samples[monitor.samples.length - 1];
    if (prev && m.time !== undefined && s.t <= prev.t) { setLive(monitor.mode === 'stream' ? 'live' : 'polling'); return; } // seen already
    monitor.samples.push(s);
    const cutoff = s.t - HISTORY_SEC * 1000;
    while (monitor.samples.length && monitor.samples[0].t < cutoff) monitor.samples.shift();
    monitor.lastEvent = s.t;
    setLive(monitor.mode === 'stream' ? 'live' : 'polling');
    for (const fn of monitor.listeners) fn(monitor.samples);
  }
  function setLive(state) {
    const el = $('#live');
    if (!el) return;
    el.textContent = state;
    el.dataset.state = state;
    el.title = { live: 'Live: server-sent events', polling: 'Live: polling every second', offline: 'Not receiving live data' }[state] || state;
  }
  function startMonitor() {
    if (monitor.mode !== 'idle' || !session.token || session.mustChange) return;
    seedHistory();
    openStream();
  }
  // The server keeps the last minutes of samples (GET /monitor): the charts start from them
  // instead of from empty. Optional: without it the charts fill as the stream goes.
  async function seedHistory() {
    try {
      const hist = await get('/monitor');
      if (!Array.isArray(hist) || !hist.length || hist[0].time === undefined) return;
      const first = monitor.samples.length ? monitor.samples[0].t : Infinity;
      const older = hist.map(sampleOf).filter((s) => s.t < first && s.t >= Date.now() - HISTORY_SEC * 1000);
      if (!older.length) return;
      monitor.samples = older.concat(monitor.samples);
      for (const fn of monitor.listeners) fn(monitor.samples);
    } catch (_) { /* no history: fine */ }
  }
  function stopMonitor() {
    monitor.mode = 'idle';
    if (monitor.abort) monitor.abort.abort();
    monitor.abort = null;
    monitor.timers.forEach(clearTimeout);
    monitor.timers.forEach(clearInterval);
    monitor.timers = [];
    setLive('offline');
  }
  async function openStream() {
    stopMonitor();
    monitor.mode = 'stream';
    const ctrl = new AbortController();
    monitor.abort = ctrl;
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctrl.abort(), STREAM_STALL_MS);
    };
    try {
      const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${session.token}` };
      arm();
      const resp = await fetch(`${API}/monitor/stream`, { headers, signal: ctrl.signal, cache: 'no-store', credentials: 'same-origin' });
      if (!resp.ok || !resp.body) {
        let data = null;
        try { data = await resp.json(); } catch (_) { /* not JSON */ }
        const err = new ApiError(resp.status, data && data.code, data && data.message);
        handleAuthError(err);
        throw err;
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        buf += decoder.decode(value, { stream: true });
        let idx;
        while ((idx = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + (buf[idx] === '\r' ? 4 : 2));
          let event = 'message';
          const data = [];
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const fieldName = c < 0 ? line : line.slice(0, c);
            const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (fieldName === 'event') event = val;
            else if (fieldName === 'data') data.push(val);
          }
          if ((event === 'monitor' || event === 'message') && data.length) {
            try { pushSample(JSON.parse(data.join('\n'))); } catch (_) { /* a bad event is skipped */ }
          }
        }
      }
      clearTimeout(watchdog);
      // The server closed the stream: open it again shortly.
      if (monitor.mode === 'stream' && monitor.abort === ctrl) monitor.timers.push(setTimeout(openStream, 1000));
    } catch (e) {
      clearTimeout(watchdog);
      if (monitor.abort !== ctrl || !session.token || session.mustChange) return; // stopped on purpose
      if (e instanceof ApiError && e.status === 401) return;
      startPolling();
    }
  }
  function startPolling() {
    stopMonitor();
    monitor.mode = 'poll';
    setLive('polling');
    const tick = async () => {
      try { pushSample(await get('/monitor_current')); } catch (e) {
        if (e.status === 401 || e.code === 'PASSWORD_CHANGE_REQUIRED') stopMonitor();
        else setLive('offline');
      }
    };
    tick();
    monitor.timers.push(setInterval(tick, 1000));
    monitor.timers.push(setTimeout(() => { if (monitor.mode === 'poll') openStream(); }, STREAM_RETRY_MS));
  }

  // -- charts (canvas, no library) ----------------------------------------------------------
  // The canvas keeps data-samples (in the shown window), data-updates, data-last-<series> and
  // data-max-<series> (over the shown window) up to date, for tests and for anyone reading the
  // page without pixels.
  class LineChart {
    constructor(canvas, series, opts = {}) {
      this.canvas = canvas;
      this.series = series;       // [{key, label, color}]
      this.windowSec = opts.windowSec || 300;
      this.unit = opts.unit || '';
      this.integer = !!opts.integer;
      this.samples = [];
      this.updates = 0;
      this.hover = null;
      this.legend = opts.legend;  // element that shows the values
      canvas.addEventListener('pointermove', (e) => { this.hover = e.offsetX; this.draw(); });
      canvas.addEventListener('pointerleave', () => { this.hover = null; this.draw(); });
      this.resizeObserver = new ResizeObserver(() => this.draw());
      this.resizeObserver.observe(canvas);
    }
    destroy() { this.resizeObserver.disconnect(); }
    setWindow(sec) { this.windowSec = sec; this.draw(); }
    update(samples) {
      this.samples = samples;
      this.canvas.dataset.updates = String(++this.updates); // grows with every sample, whatever the window holds
      this.draw();
    }
    visible() {
      const end = this.samples.length ? this.samples[this.samples.length - 1].t : Date.now();
      return this.samples.filter((s) => s.t >= end - this.windowSec * 1000);
    }
    draw() {
      const c = this.canvas;
      const pts = this.visible();
      const now = pts.length ? pts[pts.length - 1].t : Date.now();
      const t0 = now - this.windowSec * 1000;
      // Data attributes first, so they hold even when the canvas is not drawn.
      c.dataset.samples = String(pts.length);
      c.dataset.updated = String(now);
      let max = 0;
      for (const s of this.series) {
        const last = pts.length ? pts[pts.length - 1][s.key] : 0;
        const smax = pts.reduce((m, p) => Math.max(m, p[s.key]), 0);
        c.dataset[`last${cap(s.key)}`] = String(last);
        c.dataset[`max${cap(s.key)}`] = String(smax);
        max = Math.max(max, smax);
      }
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth, hgt = c.clientHeight;
      if (!w || !hgt) return;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
        c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr);
      }
      const g = c.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, w, hgt);
      const css = getComputedStyle(c);
      const fg = css.getPropertyValue('--chart-fg').trim() || '#666';
      const grid = css.getPropertyValue('--chart-grid').trim() || '#ddd';
      const [top, step] = niceScale(max, this.integer);
      g.font = `11px ${css.fontFamily}`;
      const padL = Math.ceil(g.measureText(fmtNum(top, this.integer ? 0 : 1)).width) + 14, padR = 10, padT = 10, padB = 22;
      const plotW = w - padL - padR, plotH = hgt - padT - padB;
      const x = (t) => padL + ((t - t0) / (this.windowSec * 1000)) * plotW;
      const y = (v) => padT + plotH - (v / top) * plotH;

      // grid and axes
      g.strokeStyle = grid; g.fillStyle = fg; g.lineWidth = 1;
      g.textAlign = 'right'; g.textBaseline = 'middle';
      for (let v = 0; v <= top + step / 2; v += step) {
        const yy = Math.round(y(v)) + 0.5;
        g.beginPath(); g.moveTo(padL, yy); g.lineTo(w - padR, yy); g.stroke();
        g.fillText(fmtNum(v, this.integer ? 0 : 1), padL - 6, yy);
      }
      g.textAlign = 'center'; g.textBaseline = 'top';
      const tickSec = this.windowSec <= 60 ? 15 : this.windowSec <= 300 ? 60 : 300;
      for (let s = 0; s <= this.windowSec; s += tickSec) {
        const xx = x(now - s * 1000);
        g.fillText(s === 0 ? 'now' : `-${s >= 60 ? `${s / 60}m` : `${s}s`}`, xx, padT + plotH + 6);
      }
      if (pts.length === 0) {
        g.textAlign = 'center'; g.textBaseline = 'middle';
        g.fillText('waiting for data…', padL + plotW / 2, padT + plotH / 2);
      }
      // series
      g.lineJoin = 'round';
      // The first series on top, the others a little wider, so equal curves (in = out) both show.
      for (const s of [...this.series].reverse()) {
        g.strokeStyle = s.color; g.lineWidth = s === this.series[0] ? 2 : 3.5;
        g.beginPath();
        pts.forEach((p, i) => {
          const px = x(p.t), py = y(p[s.key]);
          if (i === 0 || p.t - pts[i - 1].t > 5000) g.moveTo(px, py); else g.lineTo(px, py);
        });
        g.stroke();
      }
      // hover: the nearest sample
      let shown = pts[pts.length - 1];
      if (this.hover !== null && pts.length) {
        const th = t0 + ((this.hover - padL) / plotW) * this.windowSec * 1000;
        shown = pts.reduce((a, b) => (Math.abs(b.t - th) < Math.abs(a.t - th) ? b : a));
        const hx = Math.round(x(shown.t)) + 0.5;
        g.strokeStyle = fg; g.lineWidth = 1; g.setLineDash([3, 3]);
        g.beginPath(); g.moveTo(hx, padT); g.lineTo(hx, padT + plotH); g.stroke(); g.setLineDash([]);
        for (const s of this.series) {
          g.fillStyle = s.color; g.beginPath(); g.arc(hx, y(shown[s.key]), 3, 0, Math.PI * 2); g.fill();
        }
      }
      if (this.legend) this.renderLegend(shown);
    }
    renderLegend(sample) {
      const items = this.series.map((s) => {
        const sw = h('span', { class: 'swatch' });
        sw.style.background = s.color;
        const v = sample ? sample[s.key] : null;
        return h('span', { class: 'legend-item', dataset: { series: s.key } }, sw, `${s.label} `,
          h('b', null, v === null ? '–' : (this.integer ? fmtNum(v) : fmtRate(v))), this.unit ? ` ${this.unit}` : '');
      });
      clear(this.legend).append(...items);
      if (sample && this.hover !== null) this.legend.append(h('span', { class: 'legend-time' }, new Date(sample.t).toLocaleTimeString()));
    }
  }
  function cap(s) { return s.charAt(0).toUpperCase() + s.slice(1); }
  // A round top and step for the y axis, never below 1 (or 5 for integers).
  function niceScale(max, integer) {
    const m = Math.max(max, integer ? 4 : 1);
    const rough = m / 4;
    const mag = 10 ** Math.floor(Math.log10(rough));
    let step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= rough);
    if (integer) step = Math.max(1, Math.ceil(step));
    return [Math.ceil(m / step) * step, step];
  }

  // -- routing ------------------------------------------------------------------------------
  let pendingNotice = null;
  let active = null;   // {name, ctx}
  function currentRoute() {
    const raw = (location.hash || '').replace(/^#\/?/, '');
    const [path, qs] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { name: parts[0] || '', args: parts.slice(1), params: new URLSearchParams(qs || '') };
  }
  function go(name) {
    const target = `#/${name}`;
    if (location.hash === target) route(); else location.hash = target;
  }
  // Per-page context: timers and fetches that end when the page is left.
  function makeContext() {
    const ctrl = new AbortController();
    const timers = [];
    const cleanups = [];
    return {
      signal: ctrl.signal,
      every(ms, fn) {
        timers.push(setInterval(() => { if (!document.hidden) fn(); }, ms));
      },
      onLeave(fn) { cleanups.push(fn); },
      loaded(el) { el.dataset.loaded = String(Date.now()); },
      close() { ctrl.abort(); timers.forEach(clearInterval); cleanups.forEach((f) => f()); },
    };
  }

  const pages = {};
  const titles = {
    overview: 'Overview', clients: 'Clients', sessions: 'Sessions', subscriptions: 'Subscriptions', topics: 'Topics',
    retained: 'Retained messages', plugins: 'Plugins', listeners: 'Listeners', users: 'Built-in users',
    acl: 'ACL rules', cache: 'Authorization cache', banned: 'Banned clients', settings: 'Settings',
    login: 'Log in', 'change-password': 'Change the default password',
  };

  function route() {
    let { name } = currentRoute();
    if (!session.token) {
      if (name !== 'login') { if (name) store.setItem('swiftlet.next', name); name = 'login'; if (location.hash !== '#/login') { location.replace('#/login'); return; } }
    } else if (session.mustChange) {
      if (name !== 'change-password') { location.replace('#/change-password'); return; }
    } else if (!pages[name] || name === 'login' || name === 'change-password') {
      location.replace('#/overview');
      return;
    }
    if (active) active.ctx.close();
    const bare = name === 'login' || name === 'change-password';
    document.body.classList.toggle('bare', bare);
    document.body.dataset.page = name;
    document.title = `${titles[name] || name} · Swiftlet`;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.page === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    setNav(false);
    $('#toast').classList.remove('show'); // a confirmation belongs to the page it was given on
    $('#whoami').textContent = session.username || '';
    if (!bare) startMonitor();
    const view = clear($('#view'));
    const ctx = makeContext();
    active = { name, ctx };
    const page = h('section', { class: `page page-${name}`, dataset: { page: name } });
    view.append(page);
    try {
      pages[name](page, ctx, currentRoute());
    } catch (e) {
      page.append(h('p', { class: 'error' }, describe(e)));
    }
    if (!bare) view.focus({ preventScroll: true });
  }
  function pageHeader(title, ...extra) {
    return h('header', { class: 'page-head' }, h('h1', null, title), h('div', { class: 'head-actions' }, extra));
  }
  function card(title, ...body) {
    return h('section', { class: 'card' }, title ? h('h2', null, title) : null, body);
  }
  function setNav(open) {
    document.body.classList.toggle('nav-open', open);
    $('#nav-toggle').setAttribute('aria-expanded', String(open));
  }

  // -- pages: login and the forced password change -----------------------------------------
  pages.login = (page) => {
    const err = h('p', { class: 'form-error', role: 'alert' }, pendingNotice || '');
    pendingNotice = null;
    const form = buildForm([
      { name: 'username', label: 'Username', required: true, autocomplete: 'username', value: '' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
    ], 'Log in', async (v) => {
      err.textContent = '';
      try {
        const resp = await api('POST', '/login', { username: v.username, password: v.password }, { noAuth: true });
        session.set(resp, v.username);
        loginPassword = resp.password_change_required ? v.password : null;
        const next = store.getItem('swiftlet.next');
        store.removeItem('swiftlet.next');
        go(resp.password_change_required ? 'change-password' : (next && pages[next] ? next : 'overview'));
      } catch (e) {
        if (e.code === 'BAD_USERNAME_OR_PWD' || e.status === 401) err.textContent = 'Wrong username or password.';
        else if (e.status === 429) err.textContent = `Too many attempts: try again in ${e.retryAfter || 60} seconds.`;
        else err.textContent = describe(e);
      }
    });
    form.id = 'login-form';
    form.insertBefore(err, form.lastChild);
    page.append(h('div', { class: 'login-card card' },
      h('div', { class: 'login-brand' }, h('img', { src: '/static/favicon.svg', alt: '', width: 40, height: 40 }), h('span', null, 'Swiftlet')),
      h('h1', null, 'Log in to the dashboard'), form,
      h('p', { class: 'muted' }, 'First start: admin / public, then choose a new password.')));
  };

  pages['change-password'] = (page) => {
    const err = h('p', { class: 'form-error', role: 'alert' });
    const fields = [];
    if (loginPassword === null) fields.push({ name: 'old', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' });
    fields.push({ name: 'new1', label: 'New password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'new2', label: 'New password again', type: 'password', required: true, autocomplete: 'new-password' });
    const form = buildForm(fields, 'Change password', async (v) => {
      err.textContent = '';
      const old = loginPassword ?? v.old;
      if (v.new1 !== v.new2) { err.textContent = 'The two new passwords differ.'; return; }
      if (v.new1 === old) { err.textContent = 'The new password must differ from the current one.'; return; }
      try {
        await changeOwnPassword(old, v.new1);
        loginPassword = null;
        toast('Password changed.', 'ok');
        go('overview');
      } catch (e) { err.textContent = describe(e); }
    });
    form.id = 'change-password-form';
    form.insertBefore(err, form.lastChild);
    page.append(h('div', { class: 'login-card card' },
      h('h1', null, 'Choose a new password'),
      h('p', null, `The account ${session.username} still has its default password. Choose a new one to continue.`),
      form,
      h('p', null, h('button', { type: 'button', class: 'link-button', onclick: logout }, 'Log out instead'))));
  };

  // change_pwd, then a fresh login so the session carries no stale flag (the server may also
  // end the sessions of an account whose password changed).
  async function changeOwnPassword(oldPwd, newPwd) {
    const user = session.username;
    await api('POST', `/users/${enc(user)}/change_pwd`, { old_pwd: oldPwd, new_pwd: newPwd });
    try {
      const resp = await api('POST', '/login', { username: user, password: newPwd }, { noAuth: true });
      session.set(resp, user);
    } catch (_) {
      session.passwordChanged();
    }
    stopMonitor();
  }

  async function logout() {
    try { if (session.token) await api('POST', '/logout', undefined, { noAuth: false }); } catch (_) { /* gone anyway */ }
    session.clear();
    stopMonitor();
    monitor.samples = [];
    go('login');
  }

  // -- overview -----------------------------------------------------------------------------
  const COLORS = { received: '#1f6feb', sent: '#2da44e', dropped: '#cf222e', connections: '#8250df', subscriptions: '#bf8700' };
  pages.overview = (page, ctx) => {
    const stats = h('div', { class: 'stat-grid', id: 'stats' });
    const node = h('p', { class: 'muted node-line' });
    const windowSel = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' });
    const msgCanvas = h('canvas', { id: 'chart-messages', class: 'chart', role: 'img', 'aria-label': 'Messages per second' });
    const msgLegend = h('div', { class: 'legend' });
    const connCanvas = h('canvas', { id: 'chart-connections', class: 'chart', role: 'img', 'aria-label': 'Connections and subscriptions' });
    const connLegend = h('div', { class: 'legend' });
    page.append(pageHeader('Overview', windowSel), node, stats,
      h('div', { class: 'chart-grid' },
        card('Messages per second', h('div', { class: 'chart-box' }, msgCanvas), msgLegend),
        card('Connections', h('div', { class: 'chart-box' }, connCanvas), connLegend)));
    const msgChart = new LineChart(msgCanvas, [
      { key: 'received', label: 'in', color: COLORS.received },
      { key: 'sent', label: 'out', color: COLORS.sent },
      { key: 'dropped', label: 'dropped', color: COLORS.dropped },
    ], { legend: msgLegend, unit: '/s' });
    const connChart = new LineChart(connCanvas, [
      { key: 'connections', label: 'connections', color: COLORS.connections },
      { key: 'subscriptions', label: 'subscriptions', color: COLORS.subscriptions },
    ], { legend: connLegend, integer: true });
    const windowSec = Number(store.getItem('swiftlet.window')) || 300;
    for (const [sec, label] of [[60, '1 min'], [300, '5 min'], [900, '15 min']]) {
      const b = h('button', { type: 'button', class: 'secondary small', 'aria-pressed': String(sec === windowSec), dataset: { window: sec } }, label);
      b.addEventListener('click', () => {
        store.setItem('swiftlet.window', String(sec));
        for (const o of windowSel.children) o.setAttribute('aria-pressed', String(o === b));
        msgChart.setWindow(sec); connChart.setWindow(sec);
      });
      windowSel.append(b);
    }
    msgChart.windowSec = connChart.windowSec = windowSec;
    const onSamples = (s) => { msgChart.update(s); connChart.update(s); };
    monitor.listeners.add(onSamples);
    onSamples(monitor.samples);
    ctx.onLeave(() => { monitor.listeners.delete(onSamples); msgChart.destroy(); connChart.destroy(); });

    const statDefs = [
      ['connections.count', 'Connections'], ['sessions.count', 'Sessions'], ['subscriptions.count', 'Subscriptions'],
      ['topics.count', 'Topics'], ['retained.count', 'Retained'], ['sidecars.count', 'Sidecars'],
      ['messages.received', 'Messages in'], ['messages.sent', 'Messages out'], ['messages.dropped', 'Dropped'],
      ['bytes.received', 'Bytes in', fmtBytes], ['bytes.sent', 'Bytes out', fmtBytes],
    ];
    async function load() {
      const [st, me, nd] = await Promise.allSettled([get('/stats', { signal: ctx.signal }), get('/metrics', { signal: ctx.signal }), get('/nodes', { signal: ctx.signal })]);
      const all = { ...(st.value && !Array.isArray(st.value) ? st.value : (st.value && st.value[0]) || {}),
        ...(me.value && !Array.isArray(me.value) ? me.value : (me.value && me.value[0]) || {}) };
      clear(stats);
      for (const [k, label, f] of statDefs) {
        stats.append(h('div', { class: 'stat', dataset: { stat: k } }, h('span', { class: 'stat-label' }, label),
          h('span', { class: 'stat-value' }, (f || fmtNum)(all[k]))));
      }
      // GET /nodes (EMQX): uptime in milliseconds, memory_used in bytes.
      const n = Array.isArray(nd.value) ? nd.value[0] : nd.value;
      if (n) {
        node.textContent = [n.node, n.node_status || n.status, n.version && `version ${n.version}`,
          n.uptime !== undefined && `up ${fmtDuration(Number(n.uptime) / 1000)}`,
          n.memory_used !== undefined && `memory ${fmtBytes(n.memory_used)}`].filter(Boolean).join(' · ');
      }
      if (st.status === 'rejected' && st.reason.name !== 'AbortError') node.textContent = `Could not load the statistics: ${describe(st.reason)}`;
      ctx.loaded(stats);
    }
    load();
    ctx.every(5000, load);
  };

  // -- clients ------------------------------------------------------------------------------
  pages.clients = (page, ctx) => {
    let list;
    const kick = async (c) => {
      if (!await confirmDialog(`Disconnect client “${c.clientid}”? It may reconnect.`, 'Kick')) return;
      try {
        await api('DELETE', `/clients/${enc(c.clientid)}`);
        toast(`Client ${c.clientid} kicked.`, 'ok');
      } catch (e) { toast(`Kick failed: ${describe(e)}`, 'error'); }
      list.reload();
    };
    list = pagedList(ctx, {
      name: 'clients',
      path: (p) => `/clients${query({
        [{ clientid: 'like_clientid', username: 'like_username', ip: 'ip_address' }[p.by] || 'like_clientid']: p.q,
        conn_state: p.state,
      })}`,
      filters: [
        { name: 'by', label: 'Search by', type: 'select', options: [['clientid', 'Client ID'], ['username', 'Username'], ['ip', 'IP address']] },
        { name: 'q', label: 'Search', type: 'search', placeholder: 'part of a client id or username, or an IP' },
        { name: 'state', label: 'State', type: 'select', options: [['', 'any'], ['connected', 'connected'], ['disconnected', 'disconnected']] },
      ],
      key: (c) => c.clientid,
      rowData: (c) => ({ connected: String(!!c.connected) }),
      empty: 'No clients match.',
      columns: [
        { key: 'clientid', label: 'Client ID', render: (c) => h('button', { type: 'button', class: 'link-button mono', onclick: () => clientDetails(c.clientid, () => list.reload()) }, c.clientid) },
        { key: 'username', label: 'Username' },
        { key: 'ip_address', label: 'Address', render: (c) => `${c.ip_address ?? ''}${c.port ? `:${c.port}` : ''}` },
        { key: 'connected', label: 'Connected', render: (c) => yesNo(c.connected) },
        { key: 'proto_ver', label: 'MQTT', render: (c) => ({ 3: '3.1', 4: '3.1.1', 5: '5.0' }[c.proto_ver] || scalar(c.proto_ver)) },
        { key: 'keepalive', label: 'Keepalive' },
        { key: 'subscriptions_cnt', label: 'Subs', cls: 'num' },
        { key: 'inflight_cnt', label: 'Inflight', cls: 'num' },
        { key: 'mqueue_len', label: 'Queued', cls: 'num' },
        { key: 'listener', label: 'Listener' },
        { key: 'actions', label: '', cls: 'actions-cell', render: (c) => actions(act('Kick', () => kick(c), 'danger small', { 'data-action': 'kick' })) },
      ],
    });
    page.append(pageHeader('Clients'), list);
  };

  async function clientDetails(clientid, after) {
    await openDialog(`Client ${clientid}`, (close) => {
      const body = h('div', { class: 'details' }, h('p', { class: 'muted' }, 'Loading…'));
      const subs = dataTable([
        { key: 'topic', label: 'Topic', cls: 'mono' }, { key: 'qos', label: 'QoS' },
        { key: 'nl', label: 'No local' }, { key: 'rap', label: 'Retain as published' }, { key: 'rh', label: 'Retain handling' },
        { key: 'x', label: '', cls: 'actions-cell', render: (s) => act('Unsubscribe', async () => {
          try { await api('POST', `/clients/${enc(clientid)}/unsubscribe`, { topic: s.topic }); loadSubs(); } catch (e) { toast(describe(e), 'error'); }
        }) },
      ], { empty: 'No subscriptions.', key: (s) => s.topic });
      async function loadSubs() {
        try { subs.update(rowsOf(await get(`/clients/${enc(clientid)}/subscriptions`))); } catch (e) { toast(describe(e), 'error'); }
      }
      (async () => {
        try {
          const c = await get(`/clients/${enc(clientid)}`);
          clear(body).append(kvTable(c));
        } catch (e) { clear(body).append(h('p', { class: 'error' }, describe(e))); }
      })();
      loadSubs();
      const subForm = buildForm([
        { name: 'topic', label: 'Topic filter', required: true },
        { name: 'qos', label: 'QoS', type: 'select', options: [['0', '0'], ['1', '1'], ['2', '2']] },
      ], 'Subscribe', async (v, f) => {
        try { await api('POST', `/clients/${enc(clientid)}/subscribe`, { topic: v.topic, qos: Number(v.qos) }); f.reset(); loadSubs(); } catch (e) { toast(describe(e), 'error'); }
      }, 'inline');
      return [body, h('h3', null, 'Subscriptions'), subs, subForm,
        h('div', { class: 'actions' },
          act('Kick', async () => {
            try { await api('DELETE', `/clients/${enc(clientid)}`); toast(`Client ${clientid} kicked.`, 'ok'); close(true); } catch (e) { toast(describe(e), 'error'); }
          }, 'danger'),
          act('Close', () => close(null), 'secondary'))];
    });
    if (after) after();
  }
  // An object as a two-column table (nested objects flattened one level, as text).
  function kvTable(obj) {
    return h('table', { class: 'kv' }, h('tbody', null, Object.entries(obj || {}).map(([k, v]) =>
      h('tr', null, h('th', { scope: 'row' }, k), h('td', null, scalar(v))))));
  }

  // -- sessions, subscriptions, topics ------------------------------------------------------
  pages.sessions = (page, ctx) => {
    page.append(pageHeader('Sessions'), pagedList(ctx, {
      name: 'sessions',
      path: (p) => `/sessions${query({ clientid: p.clientid, conn_state: p.state })}`,
      filters: [
        { name: 'clientid', label: 'Client ID', placeholder: 'exact client id' },
        { name: 'state', label: 'State', type: 'select', options: [['', 'any'], ['connected', 'connected'], ['disconnected', 'disconnected']] },
      ],
      key: (s) => s.clientid,
      empty: 'No sessions.',
      columns: [
        { key: 'clientid', label: 'Client ID', cls: 'mono' },
        { key: 'connected', label: 'Connected', render: (s) => yesNo(s.connected) },
        { key: 'proto_ver', label: 'MQTT', render: (c) => ({ 3: '3.1', 4: '3.1.1', 5: '5.0' }[c.proto_ver] || scalar(c.proto_ver)) },
        { key: 'expiry_interval', label: 'Expiry', render: (s) => (s.expiry_interval === undefined ? '–' : fmtDuration(s.expiry_interval)) },
        { key: 'subscriptions_cnt', label: 'Subs', cls: 'num' },
        { key: 'inflight_cnt', label: 'Inflight', cls: 'num' },
        { key: 'mqueue_len', label: 'Queued', cls: 'num' },
        { key: 'awaiting_rel_cnt', label: 'Awaiting rel', cls: 'num' },
      ],
    }));
  };

  pages.subscriptions = (page, ctx) => {
    page.append(pageHeader('Subscriptions'), pagedList(ctx, {
      name: 'subscriptions',
      path: (p) => `/subscriptions${query({ clientid: p.clientid, topic: p.topic, qos: p.qos })}`,
      filters: [
        { name: 'clientid', label: 'Client ID' },
        { name: 'topic', label: 'Topic' },
        { name: 'qos', label: 'QoS', type: 'select', options: [['', 'any'], ['0', '0'], ['1', '1'], ['2', '2']] },
      ],
      key: (s) => `${s.clientid} ${s.topic}`,
      empty: 'No subscriptions.',
      columns: [
        { key: 'clientid', label: 'Client ID', cls: 'mono' },
        { key: 'topic', label: 'Topic', cls: 'mono' },
        { key: 'qos', label: 'QoS' },
        { key: 'nl', label: 'No local' },
        { key: 'rap', label: 'Retain as published' },
        { key: 'rh', label: 'Retain handling' },
      ],
    }));
  };

  pages.topics = (page, ctx) => {
    page.append(pageHeader('Topics'), pagedList(ctx, {
      name: 'topics',
      path: (p) => `/topics${query({ topic: p.topic })}`,
      filters: [{ name: 'topic', label: 'Topic' }],
      key: (t) => t.topic,
      empty: 'No routes.',
      columns: [{ key: 'topic', label: 'Topic', cls: 'mono' }, { key: 'node', label: 'Node' }],
    }));
  };

  // -- retained -----------------------------------------------------------------------------
  pages.retained = (page, ctx) => {
    let list;
    const show = async (m) => {
      try {
        const full = await get(`/mqtt/retainer/message/${enc(m.topic)}`);
        await openDialog(`Retained on ${m.topic}`, (close) => [
          kvTable({ ...full, payload: undefined }),
          h('h3', null, 'Payload'), h('pre', { class: 'payload' }, decodePayload(full.payload)),
          h('div', { class: 'actions' }, act('Close', () => close(null)))]);
      } catch (e) { toast(describe(e), 'error'); }
    };
    const del = async (m) => {
      if (!await confirmDialog(`Delete the retained message on “${m.topic}”?`, 'Delete')) return;
      try { await api('DELETE', `/mqtt/retainer/message/${enc(m.topic)}`); toast('Retained message deleted.', 'ok'); } catch (e) { toast(describe(e), 'error'); }
      list.reload();
    };
    const publish = () => formDialog('Publish a message', [
      { name: 'topic', label: 'Topic', required: true },
      { name: 'payload', label: 'Payload', type: 'textarea' },
      { name: 'qos', label: 'QoS', type: 'select', options: [['0', '0'], ['1', '1'], ['2', '2']] },
      { name: 'retain', label: 'Retain', type: 'checkbox', value: true },
    ], 'Publish', async (v) => {
      await api('POST', '/publish', { topic: v.topic, payload: v.payload, qos: Number(v.qos), retain: v.retain, payload_encoding: 'plain' });
      toast(`Published to ${v.topic}.`, 'ok');
      list.reload();
    });
    list = pagedList(ctx, {
      name: 'retained',
      path: () => '/mqtt/retainer/messages',
      key: (m) => m.topic,
      empty: 'No retained messages.',
      columns: [
        { key: 'topic', label: 'Topic', render: (m) => h('button', { type: 'button', class: 'link-button mono', onclick: () => show(m) }, m.topic) },
        { key: 'qos', label: 'QoS' },
        { key: 'bytes', label: 'Size', cls: 'num', render: (m) => (m.bytes === undefined ? '–' : fmtBytes(m.bytes)) },
        { key: 'payload', label: 'Payload', cls: 'mono clip', render: (m) => (m.payload === undefined ? '…' : decodePayload(m.payload).slice(0, 80)) },
        { key: 'x', label: '', cls: 'actions-cell', render: (m) => actions(act('Delete', () => del(m), 'danger small', { 'data-action': 'delete' })) },
      ],
    });
    page.append(pageHeader('Retained messages', act('Publish…', publish, 'primary')), list);
  };

  // -- plugins ------------------------------------------------------------------------------
  function pluginHealth(p) {
    const hv = p.health;
    if (hv !== undefined && hv !== null) {
      const text = typeof hv === 'object' ? (hv.status ?? scalar(hv)) : (typeof hv === 'boolean' ? (hv ? 'healthy' : 'unhealthy') : String(hv));
      return badge(text, /^(ok|healthy|up|passing|true)$/i.test(text) ? 'ok' : /^(unknown|-|n\/a)$/i.test(text) ? 'off' : 'bad');
    }
    if (p.state === 'running') return p.connected ? badge('healthy', 'ok') : badge('not connected', 'warn');
    if (p.state === 'failed') return badge('failed', 'bad');
    return badge('–', 'off');
  }
  function stateBadge(s) {
    return badge(s || '–', { running: 'ok', stopped: 'off', failed: 'bad', starting: 'warn', stopping: 'warn', backoff: 'warn' }[s] || '');
  }
  pages.plugins = (page, ctx) => {
    const table = dataTable([
      { key: 'name', label: 'Name', cls: 'mono' },
      { key: 'kind', label: 'Kind' },
      { key: 'state', label: 'State', render: (p) => stateBadge(p.state) },
      { key: 'health', label: 'Health', render: pluginHealth },
      { key: 'restarts', label: 'Restarts', cls: 'num', render: (p) => fmtNum(p.restarts) },
      { key: 'pid', label: 'PID', cls: 'num' },
      { key: 'last_exit', label: 'Last exit', render: (p) => p.last_exit || '–' },
      { key: 'x', label: '', cls: 'actions-cell', render: (p) => {
        const managed = (p.kind || 'managed') === 'managed';
        const running = p.state === 'running';
        return actions(
          act('Load', () => pluginAction(p.name, 'load'), 'secondary small', { 'data-action': 'load', disabled: !managed || running }),
          act('Unload', () => pluginAction(p.name, 'unload'), 'secondary small', { 'data-action': 'unload', disabled: !managed || p.state === 'stopped' }),
          act('Reload', () => pluginAction(p.name, 'reload'), 'secondary small', { 'data-action': 'reload', disabled: !managed || !running }),
          act('Config', () => pluginConfig(p.name), 'secondary small', { 'data-action': 'config', disabled: !managed }));
      } },
    ], { key: (p) => p.name, rowData: (p) => ({ state: p.state || '', connected: String(!!p.connected) }), empty: 'No plugins: put a <name>.toml in the plugins folder, or connect a sidecar.', name: 'plugins' });
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    async function load() {
      try {
        table.update(rowsOf(await get('/plugins', { signal: ctx.signal })));
        error.hidden = true;
        ctx.loaded(table);
      } catch (e) { if (e.name !== 'AbortError') { error.textContent = describe(e); error.hidden = false; } }
    }
    async function pluginAction(name, what) {
      if (what !== 'load' && !await confirmDialog(`${cap(what)} the plugin “${name}”? Clients it authenticates or serves are affected.`, cap(what))) return;
      try {
        const r = await api('PUT', `/plugins/${enc(name)}/${what}`);
        toast(`${name}: ${(r && (r.result || r.message)) || `${what} done`}`, 'ok');
      } catch (e) { toast(`${name}: ${describe(e)}`, 'error'); }
      load();
    }
    async function pluginConfig(name) {
      try {
        const cfg = await get(`/plugins/${enc(name)}/config`);
        await openDialog(`Configuration of ${name}`, (close) => [
          h('p', { class: 'muted' }, 'Secrets are masked.'),
          h('pre', { class: 'payload' }, typeof cfg === 'string' ? cfg : (cfg && typeof cfg.config === 'string' ? cfg.config : JSON.stringify(cfg, null, 2))),
          h('div', { class: 'actions' }, act('Close', () => close(null)))]);
      } catch (e) { toast(describe(e), 'error'); }
    }
    page.append(pageHeader('Plugins'), error, table);
    load();
    ctx.every(2000, load);
  };

  // -- listeners ----------------------------------------------------------------------------
  pages.listeners = (page, ctx) => simpleList(page, ctx, 'Listeners', '/listeners', [
    { key: 'id', label: 'ID', cls: 'mono' },
    { key: 'type', label: 'Type' },
    { key: 'bind', label: 'Bind', cls: 'mono' },
    { key: 'running', label: 'Running', render: (l) => yesNo(l.running) },
    { key: 'current_connections', label: 'Connections', cls: 'num', render: (l) => fmtNum(l.current_connections) },
    { key: 'max_connections', label: 'Max', cls: 'num', render: (l) => fmtNum(l.max_connections) },
  ], (l) => l.id, 'No listeners.');

  // A whole (small) list from one GET, refreshed live.
  function simpleList(page, ctx, title, path, columns, key, empty, headActions = []) {
    const table = dataTable(columns, { key, empty, name: path.replace(/^\//, '') });
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    async function load() {
      try {
        table.update(rowsOf(await get(path, { signal: ctx.signal })));
        error.hidden = true;
        ctx.loaded(table);
      } catch (e) { if (e.name !== 'AbortError') { error.textContent = `Could not load: ${describe(e)}`; error.hidden = false; } }
    }
    page.append(pageHeader(title, ...headActions), error, table);
    load();
    ctx.every(REFRESH_MS, load);
    return { reload: load, table };
  }

  // -- built-in MQTT users, ACL -------------------------------------------------------------
  const USERS_PATH = '/authentication/password_based:built_in_database/users';
  pages.users = (page, ctx) => {
    let list;
    const add = () => formDialog('Add a user', [
      { name: 'user_id', label: 'Username', required: true },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'is_superuser', label: 'Superuser (bypasses the ACL)', type: 'checkbox' },
    ], 'Add', async (v) => {
      await api('POST', USERS_PATH, { user_id: v.user_id, password: v.password, is_superuser: v.is_superuser });
      toast(`User ${v.user_id} added.`, 'ok');
      list.reload();
    });
    const passwd = (u) => formDialog(`Password of ${u.user_id}`, [
      { name: 'password', label: 'New password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'is_superuser', label: 'Superuser', type: 'checkbox', value: !!u.is_superuser },
    ], 'Save', async (v) => {
      await api('PUT', `${USERS_PATH}/${enc(u.user_id)}`, { password: v.password, is_superuser: v.is_superuser });
      toast(`User ${u.user_id} updated.`, 'ok');
      list.reload();
    });
    const del = async (u) => {
      if (!await confirmDialog(`Delete the user “${u.user_id}”? Connected clients stay connected until they reconnect.`, 'Delete')) return;
      try { await api('DELETE', `${USERS_PATH}/${enc(u.user_id)}`); toast(`User ${u.user_id} deleted.`, 'ok'); } catch (e) { toast(describe(e), 'error'); }
      list.reload();
    };
    list = pagedList(ctx, {
      name: 'users',
      path: () => USERS_PATH,
      key: (u) => u.user_id,
      empty: 'No built-in users.',
      columns: [
        { key: 'user_id', label: 'Username', cls: 'mono' },
        { key: 'is_superuser', label: 'Superuser', render: (u) => yesNo(u.is_superuser) },
        { key: 'x', label: '', cls: 'actions-cell', render: (u) => actions(
          act('Password…', () => passwd(u), 'secondary small', { 'data-action': 'passwd' }),
          act('Delete', () => del(u), 'danger small', { 'data-action': 'delete' })) },
      ],
    });
    page.append(pageHeader('Built-in users', act('Add user…', add, 'primary', { 'data-action': 'add-user' })),
      h('p', { class: 'muted' }, 'MQTT clients authenticated by the broker’s own user database (docs/auth.md).'), list);
  };

  function aclWho(r) {
    const w = r.who ?? (r.username !== undefined ? { username: r.username } : r.user !== undefined ? { user: r.user }
      : r.clientid !== undefined ? { clientid: r.clientid } : r.ipaddr !== undefined ? { ipaddr: r.ipaddr }
        : r.and !== undefined ? { and: r.and } : 'all');
    return typeof w === 'string' ? w : scalar(w);
  }
  const RULES_PATH = '/authorization/sources/built_in_database/rules';
  function aclFields(r = {}) {
    const kind = r.user !== undefined ? 'username' : r.clientid !== undefined ? 'clientid' : r.ipaddr !== undefined ? 'ipaddr' : 'all';
    return [
      { name: 'permission', label: 'Permission', type: 'select', options: [['allow', 'allow'], ['deny', 'deny']], value: r.permission ?? 'allow' },
      { name: 'kind', label: 'Who', type: 'select', value: kind,
        options: [['all', 'everyone'], ['username', 'user name'], ['clientid', 'client id'], ['ipaddr', 'address (CIDR)']] },
      { name: 'who', label: 'User name, client id or address', value: r.user ?? r.clientid ?? r.ipaddr ?? '',
        hint: 'Empty for everyone.' },
      { name: 'action', label: 'Action', type: 'select', value: r.access ?? 'pubsub',
        options: [['pubsub', 'publish and subscribe'], ['publish', 'publish'], ['subscribe', 'subscribe']] },
      { name: 'topics', label: 'Topic filters, one per line', type: 'textarea', required: true,
        value: (r.topics ?? ['#']).join('\n'), hint: '%u and %c stand for the user name and client id; “eq t” matches t literally.' },
    ];
  }
  function aclBody(v) {
    const body = { permission: v.permission, action: v.action, topics: v.topics.split('\n').map((t) => t.trim()).filter((t) => t) };
    if (v.kind !== 'all') body[v.kind] = v.who.trim();
    return body;
  }
  pages.acl = (page, ctx) => {
    const add = () => formDialog('Add an ACL rule', [...aclFields(),
      { name: 'position', label: 'Position (empty: last)', type: 'number', min: 1, inputmode: 'numeric' }], 'Add', async (v) => {
      const body = aclBody(v);
      if (v.position) body.position = Number(v.position);
      await api('POST', RULES_PATH, body);
      toast('Rule added.', 'ok');
      load();
    });
    const edit = (r) => formDialog(`ACL rule ${r.n}`, aclFields(r), 'Save', async (v) => {
      await api('PUT', `${RULES_PATH}/${r.n}`, aclBody(v));
      toast(`Rule ${r.n} replaced.`, 'ok');
      load();
    });
    const del = async (r) => {
      if (!await confirmDialog(`Delete ACL rule ${r.n}?`, 'Delete')) return;
      try { await api('DELETE', `${RULES_PATH}/${r.n}`); toast(`Rule ${r.n} deleted.`, 'ok'); } catch (e) { toast(describe(e), 'error'); }
      load();
    };
    const move = async (r, to) => {
      try { await api('POST', `${RULES_PATH}/${r.n}/move`, { position: to }); } catch (e) { toast(describe(e), 'error'); }
      load();
    };
    let count = 0;
    const table = dataTable([
      { key: 'n', label: '#', cls: 'num' },
      { key: 'permission', label: 'Permission', render: (r) => badge(r.permission || '–', r.permission === 'allow' ? 'ok' : 'bad') },
      { key: 'who', label: 'Who', render: aclWho },
      { key: 'action', label: 'Action', render: (r) => r.action ?? r.access ?? '–' },
      { key: 'topics', label: 'Topics', cls: 'mono', render: (r) => scalar(r.topics ?? r.topic) },
      { key: 'x', label: '', cls: 'actions-cell', render: (r) => actions(
        act('↑', () => move(r, r.n - 1), 'secondary small', { 'data-action': 'up', disabled: r.n <= 1, title: 'Move up' }),
        act('↓', () => move(r, r.n + 1), 'secondary small', { 'data-action': 'down', disabled: r.n >= count, title: 'Move down' }),
        act('Edit…', () => edit(r), 'secondary small', { 'data-action': 'edit' }),
        act('Delete', () => del(r), 'danger small', { 'data-action': 'delete' })) },
    ], { empty: 'No rules: every request falls through to the default.', name: 'acl', key: (r) => String(r.n) });
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    const note = h('p', { class: 'muted' });
    async function load() {
      try {
        const resp = await get(RULES_PATH, { signal: ctx.signal });
        const rows = rowsOf(resp).map((r, i) => ({ n: i + 1, ...r }));
        count = rows.length;
        table.update(rows);
        note.textContent = `Rules are matched in order; the first that matches decides.${resp && resp.file ? ` Loaded from ${resp.file}.` : ' Built-in emqttd defaults (read-only: set [auth] acl_file to edit them here).'}`;
        error.hidden = true;
        ctx.loaded(table);
      } catch (e) { if (e.name !== 'AbortError') { error.textContent = describe(e); error.hidden = false; } }
    }
    page.append(pageHeader('ACL rules', act('Add rule…', add, 'primary', { 'data-action': 'add-rule' })), note, error, table);
    load();
    ctx.every(REFRESH_MS * 2, load);
  };

  // -- cache --------------------------------------------------------------------------------
  pages.cache = (page, ctx) => {
    const body = h('div', { class: 'cache-body' });
    const error = h('p', { class: 'error', hidden: true, role: 'alert' });
    async function load() {
      try {
        render(await get('/authorization/cache', { signal: ctx.signal }));
        error.hidden = true;
        ctx.loaded(body);
      } catch (e) { if (e.name !== 'AbortError') { error.textContent = describe(e); error.hidden = false; } }
    }
    // Objects of numbers become stat cards, arrays of objects become tables.
    function render(stats) {
      clear(body);
      const scalars = {};
      for (const [k, v] of Object.entries(stats || {})) {
        if (Array.isArray(v)) {
          const keys = [...new Set(v.flatMap((o) => Object.keys(o || {})))];
          const t = dataTable(keys.map((key) => ({ key, label: key.replace(/_/g, ' ') })), { empty: 'None.', name: k });
          t.update(v);
          body.append(card(cap(k), t));
        } else if (v && typeof v === 'object') {
          body.append(card(k === 'authn' ? 'Authentication cache' : k === 'authz' ? 'Authorization cache' : cap(k),
            h('div', { class: 'stat-grid', dataset: { cache: k } }, Object.entries(v).map(([sk, sv]) =>
              h('div', { class: 'stat', dataset: { stat: `${k}.${sk}` } }, h('span', { class: 'stat-label' }, sk.replace(/_/g, ' ')),
                h('span', { class: 'stat-value' }, typeof sv === 'number' ? fmtNum(sv) : scalar(sv)))))));
        } else scalars[k] = v;
      }
      if (Object.keys(scalars).length) body.prepend(card(null, kvTable(scalars)));
    }
    const clearBtn = act('Clear cache', async () => {
      if (!await confirmDialog('Drop every cached authentication and authorization decision? The next requests ask the providers again.', 'Clear')) return;
      try {
        const r = await api('DELETE', '/authorization/cache');
        toast(`Cache cleared${r && r.dropped !== undefined ? `: ${r.dropped} entries dropped` : ''}.`, 'ok');
      } catch (e) { toast(describe(e), 'error'); }
      load();
    }, 'danger', { 'data-action': 'clear-cache' });
    page.append(pageHeader('Authorization cache', clearBtn), error, body);
    load();
    ctx.every(REFRESH_MS, load);
  };

  // -- banned -------------------------------------------------------------------------------
  pages.banned = (page, ctx) => {
    let l;
    const add = () => formDialog('Ban a client', [
      { name: 'as', label: 'By', type: 'select', options: [['clientid', 'Client ID'], ['username', 'Username'], ['peerhost', 'IP address']] },
      { name: 'who', label: 'Who', required: true },
      { name: 'reason', label: 'Reason' },
      { name: 'until', label: 'Until (empty: for ever)', type: 'datetime-local' },
    ], 'Ban', async (v) => {
      const body = { as: v.as, who: v.who };
      if (v.reason) body.reason = v.reason;
      if (v.until) body.until = new Date(v.until).toISOString();
      await api('POST', '/banned', body);
      toast(`${v.who} banned.`, 'ok');
      l.reload();
    });
    const del = async (b) => {
      if (!await confirmDialog(`Lift the ban on ${b.as} “${b.who}”?`, 'Lift', false)) return;
      try { await api('DELETE', `/banned/${enc(b.as)}/${enc(b.who)}`); toast('Ban lifted.', 'ok'); } catch (e) { toast(describe(e), 'error'); }
      l.reload();
    };
    l = simpleList(page, ctx, 'Banned clients', '/banned', [
      { key: 'as', label: 'By' },
      { key: 'who', label: 'Who', cls: 'mono' },
      { key: 'reason', label: 'Reason' },
      { key: 'at', label: 'Since', render: (b) => fmtTime(b.at) },
      { key: 'until', label: 'Until', render: (b) => fmtTime(b.until) },
      { key: 'x', label: '', cls: 'actions-cell', render: (b) => actions(act('Lift', () => del(b), 'secondary small', { 'data-action': 'unban' })) },
    ], (b) => `${b.as}:${b.who}`, 'Nobody is banned.', [act('Ban…', add, 'primary', { 'data-action': 'ban' })]);
  };

  // -- settings: own password, admins, API keys, logout --------------------------------------
  pages.settings = (page, ctx) => {
    const pwErr = h('p', { class: 'form-error', role: 'alert' });
    const pwForm = buildForm([
      { name: 'old', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' },
      { name: 'new1', label: 'New password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'new2', label: 'New password again', type: 'password', required: true, autocomplete: 'new-password' },
    ], 'Change password', async (v, f) => {
      pwErr.textContent = '';
      if (v.new1 !== v.new2) { pwErr.textContent = 'The two new passwords differ.'; return; }
      try { await changeOwnPassword(v.old, v.new1); startMonitor(); f.reset(); toast('Password changed.', 'ok'); } catch (e) { pwErr.textContent = describe(e); }
    });
    pwForm.id = 'own-password-form';
    pwForm.insertBefore(pwErr, pwForm.lastChild);

    // Dashboard administrators
    const admins = dataTable([
      { key: 'username', label: 'Username', cls: 'mono' },
      { key: 'description', label: 'Description' },
      { key: 'x', label: '', cls: 'actions-cell', render: (a) => (a.username === session.username ? badge('you', 'ok')
        : actions(act('Delete', async () => {
          if (!await confirmDialog(`Delete the administrator “${a.username}”?`, 'Delete')) return;
          try { await api('DELETE', `/users/${enc(a.username)}`); toast('Administrator deleted.', 'ok'); } catch (e) { toast(describe(e), 'error'); }
          loadAdmins();
        }, 'danger small'))) },
    ], { key: (a) => a.username, empty: 'No administrators.', name: 'admins' });
    async function loadAdmins() {
      try { admins.update(rowsOf(await get('/users', { signal: ctx.signal }))); ctx.loaded(admins); } catch (e) { if (e.name !== 'AbortError') toast(describe(e), 'error'); }
    }
    const addAdmin = act('Add administrator…', () => formDialog('Add an administrator', [
      { name: 'username', label: 'Username', required: true },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password' },
      { name: 'description', label: 'Description' },
    ], 'Add', async (v) => {
      await api('POST', '/users', { username: v.username, password: v.password, ...(v.description ? { description: v.description } : {}) });
      toast(`Administrator ${v.username} added.`, 'ok');
      loadAdmins();
    }), 'secondary');

    // API keys
    const keys = dataTable([
      { key: 'name', label: 'Name', cls: 'mono' },
      { key: 'api_key', label: 'Key', cls: 'mono' },
      { key: 'desc', label: 'Description' },
      { key: 'enable', label: 'Enabled', render: (k) => yesNo(k.enable !== false) },
      { key: 'expired_at', label: 'Expires', render: (k) => fmtTime(k.expired_at) },
      { key: 'created_at', label: 'Created', render: (k) => fmtTime(k.created_at) },
      { key: 'x', label: '', cls: 'actions-cell', render: (k) => actions(act('Delete', async () => {
        if (!await confirmDialog(`Delete the API key “${k.name}”? Scripts using it stop working.`, 'Delete')) return;
        try { await api('DELETE', `/api_key/${enc(k.name)}`); toast('API key deleted.', 'ok'); } catch (e) { toast(describe(e), 'error'); }
        loadKeys();
      }, 'danger small', { 'data-action': 'delete-key' })) },
    ], { key: (k) => k.name, empty: 'No API keys.', name: 'api_keys' });
    async function loadKeys() {
      try { keys.update(rowsOf(await get('/api_key', { signal: ctx.signal }))); ctx.loaded(keys); } catch (e) { if (e.name !== 'AbortError') toast(describe(e), 'error'); }
    }
    const newKey = act('Create API key…', () => formDialog('Create an API key', [
      { name: 'name', label: 'Name', required: true },
      { name: 'desc', label: 'Description' },
      { name: 'expired_at', label: 'Expires (empty: never)', type: 'datetime-local' },
    ], 'Create', async (v) => {
      const body = { name: v.name, enable: true };
      if (v.desc) body.desc = v.desc;
      if (v.expired_at) body.expired_at = new Date(v.expired_at).toISOString();
      const k = await api('POST', '/api_key', body);
      loadKeys();
      // The secret is shown once, after the form dialog has closed.
      setTimeout(() => openDialog('API key created', (close) => [
        h('p', null, 'Copy the secret now: it is not shown again. Use it with HTTP Basic authentication (key:secret).'),
        kvTable({ api_key: k.api_key, api_secret: k.api_secret }),
        h('div', { class: 'actions' }, act('Done', () => close(null), 'primary'))]));
    }), 'secondary', { 'data-action': 'create-key' });

    page.append(pageHeader('Settings'),
      h('div', { class: 'settings-grid' },
        card(`Your password (${session.username})`, pwForm),
        card('Session', h('p', null, `Logged in as ${session.username}. The session ends when this tab closes or the token expires.`),
          h('div', { class: 'actions' }, act('Log out', logout, 'danger', { id: 'logout-button' })))),
      card('Administrators', h('div', { class: 'card-actions' }, addAdmin), admins),
      card('API keys', h('p', { class: 'muted' }, 'For scripts: HTTP Basic authentication with key and secret, no CSRF token needed.'),
        h('div', { class: 'card-actions' }, newKey), keys));
    loadAdmins();
    loadKeys();
    ctx.every(REFRESH_MS * 3, () => { loadAdmins(); loadKeys(); });
  };

  // -- start --------------------------------------------------------------------------------
  function init() {
    $('#nav-toggle').addEventListener('click', () => setNav(!document.body.classList.contains('nav-open')));
    $('#logout').addEventListener('click', logout);
    $('#view').addEventListener('click', () => setNav(false));
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') setNav(false); });
    document.addEventListener('visibilitychange', () => {
      // Back to the tab: fill the gap in the charts from the stream (or polling).
      if (!document.hidden && session.token && !session.mustChange && monitor.mode === 'idle') startMonitor();
    });
    window.addEventListener('hashchange', route);
    // Marks a CSP violation on <body> so a test sees it (there should be none).
    document.addEventListener('securitypolicyviolation', (e) => {
      document.body.dataset.cspViolation = `${e.violatedDirective} ${e.blockedURI}`;
    });
    route();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
