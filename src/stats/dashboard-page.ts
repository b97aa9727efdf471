/**
 * The live dashboard: one self-contained page (no CDN, no external asset: it works on an offline network)
 * that reads stats.json beside it every second. The charts are two small canvases drawn by hand, which
 * needs less than a bundled chart library would. Every figure also carries its raw value in `data-value`,
 * so the browser test can compare it with /metrics.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cuttle dashboard</title>
<style>
  :root { --bg: #0f1419; --card: #1a2129; --fg: #e6e6e6; --dim: #8a96a3; --ok: #4caf82; --warn: #e0a040; --bad: #e05a5a; --accent: #5aa9e6; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
  header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .5rem 1.5rem; padding: .8rem 1rem; border-bottom: 1px solid #2a333d; }
  header h1 { font-size: 1.1rem; margin: 0; }
  header .meta { color: var(--dim); font-size: .85rem; }
  #status.stale { color: var(--bad); }
  main { padding: 1rem; display: grid; gap: .8rem; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); }
  .card { background: var(--card); border-radius: 8px; padding: .7rem .9rem; min-width: 0; }
  .card h2 { margin: 0 0 .3rem; font-size: .75rem; font-weight: 600; color: var(--dim); text-transform: uppercase; letter-spacing: .04em; }
  .big { font-size: 1.8rem; font-weight: 600; font-variant-numeric: tabular-nums; }
  .sub { color: var(--dim); font-size: .85rem; font-variant-numeric: tabular-nums; }
  .wide { grid-column: 1 / -1; }
  .half { grid-column: span 2; }
  @media (max-width: 560px) { .half { grid-column: 1 / -1; } .big { font-size: 1.5rem; } }
  canvas { width: 100%; height: 90px; display: block; }
  .bar { height: 10px; background: #2a333d; border-radius: 5px; overflow: hidden; margin: .4rem 0; }
  .bar > div { height: 100%; background: var(--accent); width: 0; transition: width .3s; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid #2a333d; }
  th { color: var(--dim); font-weight: 500; font-size: .8rem; }
  td.url { word-break: break-all; }
  td.num, th.num { text-align: right; }
  .serving { color: var(--ok); } .draining, .starting { color: var(--warn); } .down { color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1>cuttle</h1>
  <span class="meta">up <span id="uptime">–</span></span>
  <span class="meta" id="status">connecting…</span>
</header>
<main>
  <section class="card"><h2>Requests / s</h2><div class="big" id="rps">–</div><div class="sub"><span id="requests">–</span> total</div></section>
  <section class="card"><h2>Request hit ratio</h2><div class="big" id="hit-ratio">–</div><div class="sub"><span id="hits">–</span> hits, <span id="misses">–</span> misses</div></section>
  <section class="card"><h2>Byte hit ratio</h2><div class="big" id="byte-hit-ratio">–</div><div class="sub"><span id="cache-bytes">–</span> from cache</div></section>
  <section class="card"><h2>Hits p50 / p99</h2><div class="big"><span id="hit-p50">–</span></div><div class="sub">p99 <span id="hit-p99">–</span> · <span id="hit-window">–</span></div></section>
  <section class="card"><h2>Misses p50 / p99</h2><div class="big"><span id="miss-p50">–</span></div><div class="sub">p99 <span id="miss-p99">–</span> · <span id="miss-window">–</span></div></section>
  <section class="card"><h2>Upstream errors</h2><div class="big" id="upstream-errors">–</div><div class="sub"><span id="upstream-error-rate">–</span>/s · <span id="upstream-error-names">none</span></div></section>
  <section class="card half"><h2>Cache fill</h2><div class="big" id="cache-fill">–</div><div class="bar"><div id="cache-fill-bar"></div></div><div class="sub"><span id="cache-stored">–</span> of <span id="cache-bound">–</span> · <span id="cache-entries">–</span> entries · <span id="cache-evictions">–</span> evicted · <span id="cache-write-failures">–</span> write failures</div></section>
  <section class="card half"><h2>Requests / s, last 2 minutes</h2><canvas id="chart-rps"></canvas></section>
  <section class="card half"><h2>Hit ratio per second, last 2 minutes</h2><canvas id="chart-hits"></canvas></section>
  <section class="card half"><h2>Workers <span id="workers-alive" class="sub"></span></h2>
    <table><thead><tr><th>slot</th><th>pid</th><th>state</th><th class="num">restarts</th><th class="num">up</th></tr></thead><tbody id="workers"></tbody></table>
    <div class="sub"><span id="worker-restarts">–</span> restarts in all · last reload <span id="last-reload">never</span></div></section>
  <section class="card wide"><h2>Top URLs by hits, last minute</h2>
    <table><thead><tr><th>URL</th><th class="num">hits</th></tr></thead><tbody id="top-urls"></tbody></table></section>
</main>
<script>
(function () {
  var POINTS = 120;
  var rpsSeries = [], hitSeries = [];
  var last = null;
  function $(id) { return document.getElementById(id); }
  function set(id, text, value) {
    var el = $(id);
    el.textContent = text;
    if (value !== undefined) el.setAttribute('data-value', String(value));
  }
  function pct(x) { return x === null ? '–' : (x * 100).toFixed(1) + ' %'; }
  function num(x) { return x >= 1e6 ? (x / 1e6).toFixed(2) + ' M' : x >= 1e4 ? (x / 1e3).toFixed(1) + ' k' : String(Math.round(x * 10) / 10); }
  function bytes(x) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
    return (i ? x.toFixed(1) : String(x)) + ' ' + u[i];
  }
  function secs(x) {
    if (x === null) return '–';
    if (x < 0.001) return (x * 1e6).toFixed(0) + ' µs';
    if (x < 1) return (x * 1000).toFixed(x < 0.01 ? 2 : 1) + ' ms';
    return x.toFixed(2) + ' s';
  }
  function dur(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.floor(s / 60) + ' min';
    if (s < 172800) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function draw(canvas, series, max, color, fmt) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * dpr; canvas.height = h * dpr;
    var g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    var top = max || Math.max(1, Math.max.apply(null, series.concat([0])));
    g.strokeStyle = '#2a333d'; g.beginPath(); g.moveTo(0, h - 0.5); g.lineTo(w, h - 0.5); g.stroke();
    g.fillStyle = '#8a96a3'; g.font = '11px system-ui, sans-serif'; g.fillText(fmt(top), 4, 12);
    if (series.length < 2) return;
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    for (var i = 0; i < series.length; i++) {
      var x = w - (series.length - 1 - i) * (w / (POINTS - 1));
      var y = h - 2 - (series[i] / top) * (h - 16);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    }
    g.stroke();
  }
  function render(s) {
    var t = s.totals;
    set('uptime', dur(s.now - s.startedAt));
    set('rps', num(s.rates.requests), s.rates.requests);
    set('requests', String(t.requests), t.requests);
    set('hit-ratio', pct(t.hitRatio), t.hitRatio === null ? '' : t.hitRatio);
    set('hits', String(t.hits), t.hits);
    set('misses', String(t.misses), t.misses);
    set('byte-hit-ratio', pct(t.byteHitRatio), t.byteHitRatio === null ? '' : t.byteHitRatio);
    set('cache-bytes', bytes(t.cacheBytes), t.cacheBytes);
    set('hit-p50', secs(s.latency.hit.p50), s.latency.hit.p50 === null ? '' : s.latency.hit.p50);
    set('hit-p99', secs(s.latency.hit.p99), s.latency.hit.p99 === null ? '' : s.latency.hit.p99);
    set('miss-p50', secs(s.latency.miss.p50), s.latency.miss.p50 === null ? '' : s.latency.miss.p50);
    set('miss-p99', secs(s.latency.miss.p99), s.latency.miss.p99 === null ? '' : s.latency.miss.p99);
    ['hit', 'miss'].forEach(function (k) {
      var w = s.latency[k].window;
      set(k + '-window', w === 'minute' ? 'last minute' : 'since start', w);
    });
    set('upstream-errors', String(t.upstreamErrors), t.upstreamErrors);
    set('upstream-error-rate', num(s.rates.upstreamErrors), s.rates.upstreamErrors);
    var names = Object.keys(s.upstreamErrors).map(function (k) { return k + ' ' + s.upstreamErrors[k]; });
    set('upstream-error-names', names.length ? names.join(', ') : 'none');
    var c = s.cache, fill = c.bound ? c.bytes / c.bound : 0;
    set('cache-fill', (fill * 100).toFixed(fill < 0.1 ? 2 : 1) + ' %', fill);
    $('cache-fill-bar').style.width = Math.min(100, fill * 100) + '%';
    set('cache-stored', bytes(c.bytes), c.bytes);
    set('cache-bound', bytes(c.bound), c.bound);
    set('cache-entries', String(c.entries), c.entries);
    set('cache-evictions', String(c.evictions), c.evictions);
    set('cache-write-failures', String(c.writeFailures), c.writeFailures);
    var wb = $('workers'); wb.textContent = '';
    s.workers.forEach(function (w) {
      var tr = document.createElement('tr');
      cell(tr, w.slot < 0 ? '–' : String(w.slot));
      cell(tr, String(w.pid));
      cell(tr, w.state, w.state);
      cell(tr, String(w.restarts), 'num');
      cell(tr, w.state === 'down' ? '–' : dur(s.now - w.startedAt), 'num');
      wb.appendChild(tr);
    });
    set('workers-alive', '(' + s.workersAlive + ' alive)', s.workersAlive);
    set('worker-restarts', String(s.workerRestarts), s.workerRestarts);
    set('last-reload', s.lastReload ? new Date(s.lastReload).toLocaleString() : 'never');
    var tb = $('top-urls'); tb.textContent = '';
    if (s.topUrls.length === 0) { var tr0 = document.createElement('tr'); cell(tr0, 'no hits in the last minute', 'sub'); cell(tr0, ''); tb.appendChild(tr0); }
    s.topUrls.forEach(function (u) {
      var tr = document.createElement('tr');
      cell(tr, u.url, 'url');
      cell(tr, String(u.hits), 'num');
      tb.appendChild(tr);
    });
    if (last) {
      var dh = t.hits - last.totals.hits, dm = t.misses - last.totals.misses;
      hitSeries.push(dh + dm > 0 ? dh / (dh + dm) : (hitSeries.length ? hitSeries[hitSeries.length - 1] : 0));
    } else hitSeries.push(t.hitRatio || 0);
    rpsSeries.push(s.rates.requests);
    if (rpsSeries.length > POINTS) rpsSeries.shift();
    if (hitSeries.length > POINTS) hitSeries.shift();
    draw($('chart-rps'), rpsSeries, 0, '#5aa9e6', num);
    draw($('chart-hits'), hitSeries, 1, '#4caf82', function () { return '100 %'; });
    last = s;
    document.body.setAttribute('data-updated', String(s.now));
  }
  function tick() {
    fetch('stats.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('stats.json: ' + r.status); return r.json(); })
      .then(function (s) { render(s); var st = $('status'); st.textContent = 'live · ' + new Date(s.now).toLocaleTimeString(); st.className = 'meta'; })
      .catch(function (e) { var st = $('status'); st.textContent = 'no data: ' + e.message; st.className = 'meta stale'; })
      .then(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
</script>
</body>
</html>
`;
