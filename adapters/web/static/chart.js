// A stacked bar chart of refresh attempts by outcome over time, drawn as
// plain SVG (no library). Each series has a colour *and* a fill pattern, a
// legend in words, and every bar a tooltip, so the chart reads without
// colour; `renderTable` gives the same numbers as a table.

const SVG = 'http://www.w3.org/2000/svg';

/** The series, in stacking order; each audit outcome belongs to one. */
export const SERIES = [
  { key: 'succeeded', label: 'Succeeded', colour: '#1a7f37', pattern: 'solid', outcomes: ['success', 'grace_replay', 'retry', 'anomaly_logged'] },
  { key: 'reused', label: 'Reused token (theft)', colour: '#b42318', pattern: 'hatch', outcomes: ['reused'] },
  { key: 'anomaly', label: 'Anomaly', colour: '#c4320a', pattern: 'dots', outcomes: ['anomaly'] },
  { key: 'revoked', label: 'Revoked or expired', colour: '#9a6700', pattern: 'solid', outcomes: ['revoked', 'expired'] },
  { key: 'other', label: 'Other failures', colour: '#6e7781', pattern: 'solid', outcomes: [] },
];

const STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400].map((s) => s * 1000);

function seriesOf(outcome) {
  return SERIES.find((s) => s.outcomes.includes(outcome)) || SERIES[SERIES.length - 1];
}

/**
 * Buckets audit rows ({at, outcome}) into at most `max` time slots:
 * {step, buckets: [{start, counts: {series: n}}]}.
 */
export function bucket(rows, now = Date.now(), max = 24) {
  const times = rows.map((r) => Date.parse(r.at)).filter((t) => !Number.isNaN(t));
  const first = times.length ? Math.min(...times) : now;
  const span = Math.max(1, now - first);
  const step = STEPS.find((s) => span / s <= max) || STEPS[STEPS.length - 1];
  const end = Math.ceil(now / step) * step;
  const count = Math.min(max, Math.max(1, Math.ceil((end - first) / step)));
  const start = end - count * step;
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: start + i * step,
    counts: Object.fromEntries(SERIES.map((s) => [s.key, 0])),
  }));
  rows.forEach((r, i) => {
    const at = times[i] ?? Date.parse(r.at);
    const slot = Math.min(count - 1, Math.floor((at - start) / step));
    if (slot >= 0) buckets[slot].counts[seriesOf(r.outcome).key] += 1;
  });
  return { step, buckets };
}

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function label(t, step) {
  const d = new Date(t);
  return step >= 86400000 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Draws the chart of `rows` into `container`, replacing what was there. */
export function renderChart(container, rows, now = Date.now()) {
  const { step, buckets } = bucket(rows, now);
  const W = 600, H = 240, left = 36, bottom = 24, top = 8;
  const max = Math.max(1, ...buckets.map((b) => Object.values(b.counts).reduce((a, c) => a + c, 0)));
  const svg = node('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-svg-title' });
  svg.append(node('title', { id: 'chart-svg-title' }, `Refresh attempts by outcome, ${rows.length} in all, per ${Math.round(step / 60000)} minutes`));
  const defs = node('defs');
  for (const s of SERIES) {
    const p = node('pattern', { id: `fill-${s.key}`, width: 6, height: 6, patternUnits: 'userSpaceOnUse' });
    p.append(node('rect', { width: 6, height: 6, fill: s.colour }));
    if (s.pattern === 'hatch') p.append(node('path', { d: 'M0,6 L6,0', stroke: '#fff', 'stroke-width': 1.5 }));
    if (s.pattern === 'dots') p.append(node('circle', { cx: 3, cy: 3, r: 1.2, fill: '#fff' }));
    defs.append(p);
  }
  svg.append(defs);
  const plotH = H - bottom - top;
  const slot = (W - left) / buckets.length;
  svg.append(node('line', { class: 'axis', x1: left, y1: top + plotH, x2: W, y2: top + plotH }));
  svg.append(node('line', { class: 'axis', x1: left, y1: top, x2: left, y2: top + plotH }));
  svg.append(node('text', { x: left - 4, y: top + 10, 'text-anchor': 'end' }, String(max)));
  svg.append(node('text', { x: left - 4, y: top + plotH, 'text-anchor': 'end' }, '0'));
  buckets.forEach((b, i) => {
    let y = top + plotH;
    const x = left + i * slot + slot * 0.15;
    for (const s of SERIES) {
      const n = b.counts[s.key];
      if (!n) continue;
      const h = (n / max) * plotH;
      y -= h;
      const bar = node('rect', {
        x: x.toFixed(1), y: y.toFixed(1), width: (slot * 0.7).toFixed(1), height: h.toFixed(1),
        fill: `url(#fill-${s.key})`, 'data-series': s.key, 'data-count': n,
      });
      bar.append(node('title', {}, `${label(b.start, step)}: ${n} ${s.label.toLowerCase()}`));
      svg.append(bar);
    }
    if (i % Math.ceil(buckets.length / 6) === 0) {
      svg.append(node('text', { x: (left + i * slot).toFixed(1), y: H - 6 }, label(b.start, step)));
    }
  });
  const legend = document.createElement('ul');
  legend.className = 'legend';
  const totals = Object.fromEntries(SERIES.map((s) => [s.key, buckets.reduce((a, b) => a + b.counts[s.key], 0)]));
  for (const s of SERIES) {
    const li = document.createElement('li');
    li.style.setProperty('--swatch', s.colour);
    li.dataset.pattern = s.pattern;
    li.textContent = `${s.label}: ${totals[s.key]}`;
    legend.append(li);
  }
  container.replaceChildren(svg, legend);
  return { step, buckets };
}

/** The chart's numbers as a table. */
export function renderTable(table, { step, buckets }) {
  const head = document.createElement('tr');
  for (const h of ['From', ...SERIES.map((s) => s.label)]) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    head.append(th);
  }
  const rows = buckets
    .filter((b) => Object.values(b.counts).some((c) => c > 0))
    .map((b) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = label(b.start, step);
      tr.append(th);
      for (const s of SERIES) {
        const td = document.createElement('td');
        td.className = 'num';
        td.textContent = String(b.counts[s.key]);
        tr.append(td);
      }
      return tr;
    });
  const thead = document.createElement('thead');
  thead.append(head);
  const tbody = document.createElement('tbody');
  tbody.append(...rows);
  table.replaceChildren(thead, tbody);
}
