// hookgate dashboard: plain JavaScript, no build step.
//
// The token is entered once and kept in sessionStorage (this tab only). Every
// request carries it: fetch as "Authorization: Bearer <token>", the WebSocket
// feed as the subprotocol pair ["hookgate.bearer", <token>], since browsers
// cannot set headers on a WebSocket. It never goes into a URL.
'use strict';

(() => {
  const TOKEN_KEY = 'hookgate.token';
  const POLL_MS = 5000; // stats and registrations
  const HISTORY = 120;  // latency samples kept per webhook (10 min at 5 s)
  const FEED_MAX = 200; // events kept in the feed
  const SERIES = [
    ['pp50', 'processing p50'], ['pp99', 'processing p99'],
    ['dp50', 'delivery p50'], ['dp99', 'delivery p99'],
  ];

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $('token-form'), token: $('token'), session: $('session'), status: $('conn-status'),
    forget: $('forget'), error: $('error'), window: $('window'), updated: $('updated'),
    rows: $('webhook-rows'), rowsEmpty: $('webhooks-empty'), feed: $('feed'), feedEmpty: $('feed-empty'),
    feedStatus: $('feed-status'), clearFeed: $('clear-feed'), chart: $('chart'),
    chartLabel: $('chart-label'), chartDesc: $('chart-desc'),
  };

  // One session: a token in use, its poll timer and its WebSocket. A new
  // session (or none) bumps gen, so late callbacks of the old one do nothing.
  let gen = 0;
  let token = '';
  let pollTimer = 0;
  let soonTimer = 0;
  let ws = null;
  let wsRetry = 0;
  let lastEventId = '';
  let refreshing = null;
  const rows = new Map();    // label -> <tr>
  const history = new Map(); // label -> [{t, pp50, pp99, dp50, dp99}]

  class AuthError extends Error {}

  async function api(path) {
    const resp = await fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    if (resp.status === 401) throw new AuthError('The server rejected this token.');
    if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
    return resp.json();
  }

  // setText changes an element's text only when it differs, so polling does
  // not make screen readers repeat a live region or status.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function showError(text) {
    setText(el.error, text);
    el.error.hidden = !text;
  }

  // --- session ------------------------------------------------------------

  async function start(candidate) {
    stop();
    token = candidate;
    const mine = gen;
    try {
      await refresh(mine);
    } catch (err) {
      if (mine !== gen) return;
      if (err instanceof AuthError) {
        signOut(err.message);
        return;
      }
      showError('Cannot reach hookgate: ' + err.message + '. Retrying.');
    }
    if (mine !== gen) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    el.form.hidden = true;
    el.session.hidden = false;
    el.token.value = '';
    pollTimer = setInterval(() => refresh(mine).catch((err) => failed(mine, err)), POLL_MS);
    openFeed(mine);
  }

  function stop() {
    gen++;
    clearInterval(pollTimer);
    clearTimeout(soonTimer);
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
      ws = null;
    }
    refreshing = null;
    setFeedStatus('offline', '');
  }

  function signOut(message) {
    stop();
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    for (const tr of rows.values()) tr.remove();
    rows.clear();
    history.clear();
    el.rowsEmpty.hidden = false;
    el.rowsEmpty.textContent = 'Enter a token to see your webhooks.';
    el.session.hidden = true;
    el.form.hidden = false;
    el.updated.textContent = 'Not loaded';
    showError(message || '');
    syncChartLabels();
    drawChart();
    el.token.focus();
  }

  function failed(mine, err) {
    if (mine !== gen) return;
    if (err instanceof AuthError) {
      signOut(err.message);
      return;
    }
    setText(el.status, 'Server unreachable, retrying');
    showError('Cannot reach hookgate: ' + err.message + '. Retrying.');
  }

  // --- registrations and stats ----------------------------------------------

  // refresh loads registrations and stats together; calls made while one is
  // in flight share it.
  function refresh(mine) {
    if (!refreshing) {
      refreshing = load(mine).finally(() => { if (mine === gen) refreshing = null; });
    }
    return refreshing;
  }

  async function load(mine) {
    const minutes = el.window.value;
    const [hooks, stats] = await Promise.all([
      api('/v1/webhooks'),
      api('/v1/stats?window_minutes=' + encodeURIComponent(minutes)),
    ]);
    if (mine !== gen) return;
    const byLabel = new Map(stats.webhooks.map((s) => [s.label, s]));
    const now = Date.now();
    const seen = new Set();
    for (const hook of hooks.webhooks) {
      seen.add(hook.label);
      const s = byLabel.get(hook.label) || {};
      renderRow(hook, s);
      record(hook.label, now, s);
    }
    for (const [label, tr] of rows) {
      if (!seen.has(label)) {
        tr.remove();
        rows.delete(label);
        history.delete(label);
      }
    }
    el.rowsEmpty.hidden = rows.size > 0;
    el.rowsEmpty.textContent = 'No webhooks yet: register one with the register_webhook tool.';
    setText(el.status, 'Connected');
    el.updated.textContent = 'Updated ' + new Date(now).toLocaleTimeString();
    showError('');
    syncChartLabels();
    drawChart();
  }

  // refreshSoon reloads the numbers shortly after an event arrives, so the
  // counts follow the feed without waiting for the next poll.
  function refreshSoon(mine) {
    clearTimeout(soonTimer);
    soonTimer = setTimeout(() => refresh(mine).catch((err) => failed(mine, err)), 250);
  }

  const CELLS = ['hook', 'pending', 'accepted', 'duplicates', 'badSignatures', 'acked', 'nacked',
    'leaseExpired', 'deadLettered', 'expiredUnacked', 'deliveryLatency', 'processingLatency', 'dropRate', 'actionSuccessRate'];

  function renderRow(hook, s) {
    let tr = rows.get(hook.label);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.label = hook.label;
      for (const field of CELLS) {
        const cell = document.createElement(field === 'hook' ? 'th' : 'td');
        cell.dataset.field = field;
        if (field === 'hook') {
          cell.scope = 'row';
          cell.className = 'hook';
          const name = document.createElement('span');
          name.className = 'name';
          const provider = document.createElement('span');
          provider.className = 'provider';
          const url = document.createElement('div');
          url.className = 'url';
          const code = document.createElement('code');
          const copy = document.createElement('button');
          copy.type = 'button';
          copy.className = 'copy';
          copy.textContent = 'Copy';
          copy.addEventListener('click', () => copyURL(copy, code));
          url.append(code, copy);
          cell.append(name, provider, url);
        } else {
          cell.className = 'num';
        }
        tr.append(cell);
      }
      el.rows.append(tr);
      rows.set(hook.label, tr);
    }
    const cell = (field) => tr.querySelector(`[data-field="${field}"]`);
    const hookCell = cell('hook');
    setText(hookCell.querySelector('.name'), hook.label);
    setText(hookCell.querySelector('.provider'), hook.provider);
    setText(hookCell.querySelector('code'), hook.url);
    hookCell.querySelector('.copy').setAttribute('aria-label', 'Copy the URL of ' + hook.label);
    setText(cell('pending'), String(hook.pending));
    for (const f of ['accepted', 'duplicates', 'badSignatures', 'acked', 'nacked', 'leaseExpired', 'deadLettered', 'expiredUnacked']) {
      setText(cell(f), s[f] === undefined ? '–' : String(s[f]));
    }
    cell('badSignatures').classList.toggle('bad', s.badSignatures > 0);
    setText(cell('deliveryLatency'), latency(s.deliveryLatency));
    setText(cell('processingLatency'), latency(s.processingLatency));
    setText(cell('dropRate'), percent(s.dropRate));
    setText(cell('actionSuccessRate'), percent(s.actionSuccessRate));
  }

  // copyURL copies a webhook URL; where the clipboard API is unavailable
  // (plain HTTP off localhost) it selects the URL for Ctrl+C instead.
  async function copyURL(button, code) {
    try {
      await navigator.clipboard.writeText(code.textContent);
      button.textContent = 'Copied';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  }

  function percent(v) {
    return v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%';
  }

  function latency(l) {
    if (!l) return '–';
    return `${bound(l.p50Ms)} / ${bound(l.p99Ms)}`;
  }

  // bound renders a latency bucket bound: -1 is above the largest one.
  function bound(ms) {
    return ms < 0 ? '> 1 h' : '≤ ' + duration(ms);
  }

  function duration(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return +(ms / 1000).toFixed(1) + ' s';
    if (ms < 3600000) return +(ms / 60000).toFixed(1) + ' min';
    return +(ms / 3600000).toFixed(1) + ' h';
  }

  // --- live feed -------------------------------------------------------------

  function setFeedStatus(text, cls) {
    setText(el.feedStatus, text);
    el.feedStatus.className = 'badge' + (cls ? ' ' + cls : '');
  }

  function openFeed(mine) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = lastEventId ? '?after=' + encodeURIComponent(lastEventId) : '';
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/ws${query}`, ['hookgate.bearer', token]);
    } catch (err) {
      setFeedStatus('unavailable', 'down');
      showError('The live feed cannot use this token: ' + err.message);
      return;
    }
    setFeedStatus('connecting', '');
    ws.onopen = () => {
      wsRetry = 0;
      setFeedStatus('live', 'live');
    };
    ws.onmessage = (msg) => {
      let e;
      try { e = JSON.parse(msg.data); } catch { return; }
      if (!e || typeof e.id !== 'string' || typeof e.label !== 'string') return; // ack replies
      lastEventId = e.id;
      addEvent(e);
      refreshSoon(mine);
    };
    ws.onclose = () => {
      if (mine !== gen) return;
      ws = null;
      const wait = Math.min(30000, 1000 * 2 ** wsRetry++);
      setFeedStatus('reconnecting', 'down');
      setTimeout(() => { if (mine === gen) openFeed(mine); }, wait);
    };
  }

  function addEvent(e) {
    const li = document.createElement('li');
    li.dataset.id = e.id;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const time = document.createElement('time');
    time.dateTime = e.receivedAt;
    time.textContent = new Date(e.receivedAt).toLocaleTimeString();
    const label = span('label', e.label);
    const type = span('type', e.type || '(no type)');
    const id = span('id mono', e.id);
    meta.append(time, label, type, id);
    if (!e.verified) meta.append(span('unverified', 'unverified'));
    const payload = document.createElement('pre');
    const text = JSON.stringify(e.payload);
    payload.textContent = text.length > 300 ? text.slice(0, 300) + '…' : text;
    li.append(meta, payload);
    el.feed.prepend(li);
    while (el.feed.children.length > FEED_MAX) el.feed.lastElementChild.remove();
    el.feedEmpty.hidden = true;
  }

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  // --- latency chart -----------------------------------------------------------

  function record(label, t, s) {
    let h = history.get(label);
    if (!h) history.set(label, (h = []));
    const q = (l, k) => (l ? (l[k] < 0 ? 36e5 : l[k]) : null);
    h.push({
      t,
      pp50: q(s.processingLatency, 'p50Ms'), pp99: q(s.processingLatency, 'p99Ms'),
      dp50: q(s.deliveryLatency, 'p50Ms'), dp99: q(s.deliveryLatency, 'p99Ms'),
    });
    if (h.length > HISTORY) h.shift();
  }

  function syncChartLabels() {
    const want = [...rows.keys()];
    el.chartLabel.disabled = want.length === 0;
    const have = [...el.chartLabel.options].map((o) => o.value);
    if (want.join('\n') === have.join('\n')) return;
    const selected = el.chartLabel.value;
    el.chartLabel.replaceChildren(...want.map((l) => new Option(l, l, false, l === selected)));
  }

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // drawChart plots the chosen webhook's latency quantiles over time on a
  // log scale (the values are bucket bounds from 1 ms to an hour).
  function drawChart() {
    const W = 540, H = 200, L = 62, R = 12, T = 10, B = 24;
    const label = el.chartLabel.value;
    const h = history.get(label) || [];
    const nodes = [];
    let max = 1000;
    for (const p of h) for (const [k] of SERIES) if (p[k] !== null) max = Math.max(max, p[k]);
    const top = Math.ceil(Math.log10(max));
    const y = (ms) => T + (H - T - B) * (1 - Math.log10(Math.max(ms, 1)) / top);
    for (let d = 0; d <= top; d++) {
      const yy = y(10 ** d);
      nodes.push(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid' }));
      nodes.push(svg('text', { x: L - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis' }, duration(10 ** d)));
    }
    const now = Date.now();
    const span = Math.max(60000, h.length ? now - h[0].t : 0);
    const x = (t) => L + (W - L - R) * (1 - (now - t) / span);
    nodes.push(svg('text', { x: L, y: H - 6, class: 'axis' }, '−' + duration(span)));
    nodes.push(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, 'now'));
    for (const [k] of SERIES) {
      let d = '';
      let pen = 'M';
      let last = null;
      for (const p of h) {
        if (p[k] === null) { pen = 'M'; continue; }
        d += `${pen}${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`;
        pen = 'L';
        last = p;
      }
      if (d) nodes.push(svg('path', { d, class: 's-' + k }));
      if (last) nodes.push(svg('circle', { cx: x(last.t).toFixed(1), cy: y(last[k]).toFixed(1), r: 3, class: 's-' + k }));
    }
    el.chart.replaceChildren(...nodes);
    el.chartDesc.textContent = describe(label, h);
  }

  // describe is the chart's text alternative: the latest values in words.
  function describe(label, h) {
    if (!label || !h.length) return 'No samples yet.';
    const p = h[h.length - 1];
    const words = (a, b) => (a === null ? 'no samples' : `p50 ≤ ${duration(a)}, p99 ≤ ${duration(b)}`);
    return `${label}: processing latency ${words(p.pp50, p.pp99)}; delivery latency ${words(p.dp50, p.dp99)}. ` +
      `${h.length} sample${h.length === 1 ? '' : 's'} over the last ${duration(Math.max(0, Date.now() - h[0].t))}.`;
  }

  // --- wiring ------------------------------------------------------------------

  el.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const candidate = el.token.value.trim();
    if (candidate) start(candidate);
  });
  el.forget.addEventListener('click', () => signOut(''));
  el.window.addEventListener('change', () => {
    history.clear();
    if (token) refresh(gen).catch((err) => failed(gen, err));
  });
  el.chartLabel.addEventListener('change', drawChart);
  el.clearFeed.addEventListener('click', () => {
    el.feed.replaceChildren();
    el.feedEmpty.hidden = false;
  });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    start(saved);
  } else {
    el.token.focus();
  }
  syncChartLabels();
  drawChart();
})();
