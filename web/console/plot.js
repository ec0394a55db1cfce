/* relud console: line charts as SVG, no library. Plot.line(box, spec) draws
 *   spec = {x: [..], series: [{label, y: [..], color, dash, width, connect, marks}], xlabel,
 *           ylabel, height, ymin, ymax, xfmt, yfmt, log}
 * into the element box (replacing its content): axes with round ticks, one polyline per
 * series (null/NaN values break the line, unless connect: then they are skipped), a dot at
 * every x whose marks[j] is true, a log10 y axis with log: true (values <= 0 not drawn),
 * a legend, and a cursor that follows the pointer
 * or the arrow keys (the chart is focusable) and reads out every series at that x. The spec
 * stays on box.plot, so a test or a person in the devtools can read the numbers drawn. */
'use strict';
window.Plot = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777',
    '#65a30d', '#475569', '#ea580c'];

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  /* About n round ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function extent(spec, ys) {
    let lo = Infinity, hi = -Infinity;
    for (const y of ys)
      for (const v of y)
        if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (spec.ymin !== undefined) lo = spec.ymin;
    if (spec.ymax !== undefined) hi = spec.ymax;
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-12) { if (spec.ymin === undefined) lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.06;
    return [spec.ymin !== undefined ? lo : lo - pad, spec.ymax !== undefined ? hi : hi + pad];
  }

  function line(box, spec) {
    const W = Math.max(300, Math.round(box.clientWidth || 480)), H = spec.height || 260, L = 52, R = 12, T = 10, B = spec.xlabel ? 42 : 26;
    const xs = spec.x, n = xs.length;
    const xlo = Math.min(...xs), xhi = Math.max(...xs);
    const lg = spec.log ? v => (v > 0 ? Math.log10(v) : null) : v => v;
    const ys = spec.series.map(s => s.y.map(v => (v === null || v === undefined ? null : lg(v))));
    const [ylo, yhi] = extent(spec, ys);
    const X = v => L + (xhi > xlo ? (v - xlo) / (xhi - xlo) : 0.5) * (W - L - R);
    const Y = v => T + (1 - (v - ylo) / (yhi - ylo)) * (H - T - B);
    const xf = spec.xfmt || fmt, yf = spec.yfmt || fmt, tf = spec.log ? t => (t % 1 || Math.abs(t) < 4 ? yf(Math.pow(10, t)) : '1e' + t) : yf;
    box.textContent = '';
    box.classList.add('plot');
    box.plot = spec;
    const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', tabindex: '0',
      'aria-label': (spec.title || 'chart') + ': ' + spec.series.map(s => s.label).join(', ') +
        '. Arrow keys move the cursor.'}, null);
    box.appendChild(root);
    const grid = svg('g', {class: 'grid'}, root);
    for (const t of ticks(ylo, yhi, 5)) {
      svg('line', {x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: t === 0 ? 'zero' : ''}, grid);
      svg('text', {x: L - 6, y: Y(t) + 4, 'text-anchor': 'end'}, grid).textContent = tf(t);
    }
    for (const t of ticks(xlo, xhi, 6)) {
      svg('line', {x1: X(t), x2: X(t), y1: T, y2: H - B, class: t === 0 ? 'zero' : ''}, grid);
      svg('text', {x: X(t), y: H - B + 16, 'text-anchor': 'middle'}, grid).textContent = xf(t);
    }
    if (spec.xlabel)
      svg('text', {x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'label'}, grid)
        .textContent = spec.xlabel;
    if (spec.ylabel)
      svg('text', {x: 12, y: T + (H - T - B) / 2, 'text-anchor': 'middle', class: 'label',
        transform: `rotate(-90 12 ${T + (H - T - B) / 2})`}, grid).textContent = spec.ylabel;
    spec.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      let d = '', pen = false, only = -1, count = 0;
      const marks = svg('g', {class: 'marks', 'data-label': s.label}, null);
      for (let j = 0; j < n; j++) {
        const v = ys[i][j];
        if (v === null || !Number.isFinite(v)) { if (!s.connect) pen = false; continue; }
        const yv = Math.min(Math.max(v, ylo - (yhi - ylo)), yhi + (yhi - ylo));
        d += (pen ? 'L' : 'M') + X(xs[j]).toFixed(2) + ' ' + Y(yv).toFixed(2);
        pen = true;
        only = j;
        count++;
        if (s.marks && s.marks[j]) svg('circle', {cx: X(xs[j]).toFixed(2), cy: Y(yv).toFixed(2), r: 2.5, fill: color}, marks);
      }
      svg('path', {d, stroke: color, fill: 'none', 'stroke-width': s.width || 2,
        'stroke-dasharray': s.dash ? '6 4' : 'none', class: 'series', 'data-label': s.label},
        root);
      if (marks.firstChild) root.appendChild(marks);
      if (count === 1) /* one point: a dot */
        svg('circle', {cx: X(xs[only]), cy: Y(ys[i][only]), r: 3, fill: color}, root);
      s.color = color;
    });
    /* the cursor */
    const cur = svg('g', {class: 'cursor', visibility: 'hidden'}, root);
    const vline = svg('line', {y1: T, y2: H - B}, cur);
    const dots = spec.series.map(s => svg('circle', {r: 3.5, fill: s.color}, cur));
    const legend = document.createElement('div');
    legend.className = 'legend';
    const items = spec.series.map(s => {
      const it = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.background = s.color;
      if (s.dash) sw.className = 'dash';
      const val = document.createElement('b');
      it.append(sw, s.label + ' ', val);
      legend.appendChild(it);
      return val;
    });
    const readout = document.createElement('span');
    readout.className = 'readout';
    legend.appendChild(readout);
    box.appendChild(legend);
    let at = -1;
    function show(j) {
      at = Math.max(0, Math.min(n - 1, j));
      cur.setAttribute('visibility', 'visible');
      vline.setAttribute('x1', X(xs[at]));
      vline.setAttribute('x2', X(xs[at]));
      readout.textContent = (spec.xname || 'x') + ' = ' + xf(xs[at]);
      spec.series.forEach((s, i) => {
        const v = s.y[at], t = ys[i][at], ok = t !== null && Number.isFinite(t) && t >= ylo && t <= yhi;
        dots[i].setAttribute('visibility', ok ? 'visible' : 'hidden');
        if (ok) { dots[i].setAttribute('cx', X(xs[at])); dots[i].setAttribute('cy', Y(t)); }
        items[i].textContent = yf(v);
      });
    }
    root.addEventListener('pointermove', ev => {
      const r = root.getBoundingClientRect();
      const vx = (ev.clientX - r.left) / r.width * W;
      let best = 0;
      for (let j = 1; j < n; j++) if (Math.abs(X(xs[j]) - vx) < Math.abs(X(xs[best]) - vx)) best = j;
      show(best);
    });
    root.addEventListener('keydown', ev => {
      const step = ev.shiftKey ? 10 : 1;
      if (ev.key === 'ArrowRight') show(at < 0 ? 0 : at + step);
      else if (ev.key === 'ArrowLeft') show(at < 0 ? n - 1 : at - step);
      else if (ev.key === 'Home') show(0);
      else if (ev.key === 'End') show(n - 1);
      else return;
      ev.preventDefault();
    });
    return spec;
  }

  return {line, ticks, fmt, PALETTE};
})();
