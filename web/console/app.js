/* relud console: plain JavaScript, no build step, no framework. One page per hash (#models,
 * #try, #activations, #diagnose, #train, #live, #api; /docs opens #api). Everything it shows
 * comes from relud's API: the layer kinds, losses and examples from /openapi.json, the numbers
 * from /v1/forward, the models from /v1/models, training jobs from /v1/train, the live view
 * from /metrics. The API's
 * errors are shown as the API's own message. The admin token lives in one variable, never in
 * storage. ?api=http://host:port points the page at another relud (CORS: cors_origins). */
'use strict';
(() => {
  const API = (new URLSearchParams(location.search).get('api') || '').replace(/\/+$/, '');
  const ORIGIN = API || location.origin;
  const S = {token: '', key: '', doc: null, models: null};
  window.relud = S; /* for a person in the devtools, and the browser tests */

  /* ---- DOM helpers ------------------------------------------------------------------ */
  const $ = (s, r = document) => r.querySelector(s);
  const $$ = (s, r = document) => [...r.querySelectorAll(s)];
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'style') Object.assign(e.style, v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids.flat(Infinity))
      if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  /* Text with `code` spans and blank-line paragraphs (the API document's descriptions). */
  function md(text, tag = 'p') {
    const f = document.createDocumentFragment();
    for (const para of String(text || '').split(/\n\n+/)) {
      const p = h(tag, {class: 'md'});
      String(para).split('`').forEach((part, i) => p.append(i % 2 ? h('code', null, part) : part));
      f.append(p);
    }
    return f;
  }
  const fmtNum = v => Plot.fmt(v);
  const thousands = n => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f');
  function debounce(fn, ms) {
    let t = 0;
    return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  }

  /* JSON for people: short values and numeric arrays on one line, the rest indented. */
  function compact(v) {
    if (Array.isArray(v)) return '[' + v.map(compact).join(', ') + ']';
    if (v && typeof v === 'object')
      return '{' + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ': ' + compact(x)).join(', ') + '}';
    return JSON.stringify(v === undefined ? null : v);
  }
  function pretty(v, ind = '') {
    const c = compact(v);
    const flat = Array.isArray(v) && v.every(x => typeof x === 'number' || x === null);
    if (c.length + ind.length <= 88 || flat || !v || typeof v !== 'object') return c;
    const ni = ind + '  ';
    if (Array.isArray(v)) return '[\n' + v.map(x => ni + pretty(x, ni)).join(',\n') + '\n' + ind + ']';
    return '{\n' + Object.entries(v).map(([k, x]) => ni + JSON.stringify(k) + ': ' + pretty(x, ni))
      .join(',\n') + '\n' + ind + '}';
  }

  /* ---- the API ------------------------------------------------------------------------ */
  /* One request; never throws. r.error is the API's own message on an error reply. */
  async function call(method, path, body, opt = {}) {
    const headers = {};
    const text = body === undefined || body === null ? undefined
      : typeof body === 'string' ? body : JSON.stringify(body);
    if (text !== undefined) headers['Content-Type'] = 'application/json';
    if (opt.token || S.key) headers.Authorization = 'Bearer ' + (opt.token || S.key);
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(API + path, {method, headers, body: text, cache: 'no-store'});
    } catch (e) {
      return {status: 0, ok: false, ms: performance.now() - t0,
        error: `cannot reach relud at ${ORIGIN}: ${e.message}` +
          (API ? ' (is this page\'s origin in relud\'s cors_origins?)' : '')};
    }
    const r = {status: res.status, ok: res.ok, headers: res.headers, id: res.headers.get('X-Request-Id'),
      ctype: res.headers.get('Content-Type') || ''};
    r.text = method === 'HEAD' ? '' : await res.text().catch(() => '');
    r.ms = performance.now() - t0;
    if (/json/.test(r.ctype)) { try { r.json = JSON.parse(r.text); } catch (e) { r.json = undefined; } }
    if (!res.ok) r.error = (r.json && typeof r.json.error === 'string' && r.json.error) || r.text.trim() ||
      `HTTP ${res.status} ${res.statusText}`;
    return r;
  }
  function errorBox(r, what) {
    return h('div', {class: 'error', role: 'alert'},
      h('b', null, r.status ? `${what ? what + ': ' : ''}HTTP ${r.status}` : (what || 'Network error')), ' ',
      h('span', {class: 'msg'}, r.error || 'no reply'));
  }
  function curlOf(method, path, body, admin) {
    const q = s => "'" + s.replace(/'/g, "'\\''") + "'";
    let c = 'curl -s';
    if (method === 'HEAD') c += ' -I';
    else if (method !== 'GET' && !(method === 'POST' && body)) c += ' -X ' + method;
    c += ' ' + ORIGIN + path;
    if (admin) c += " -H 'Authorization: Bearer <admin_token>'";
    if (body) {
      let b = body;
      try { b = JSON.stringify(JSON.parse(body)); } catch (e) { /* sent as typed */ }
      c += ' -d ' + q(b);
    }
    return c;
  }
  let docPromise = null;
  function getDoc() {
    if (!docPromise) docPromise = call('GET', '/openapi.json').then(r => {
      if (!r.ok || !r.json) { docPromise = null; throw r; }
      S.doc = r.json;
      return r.json;
    });
    return docPromise;
  }
  async function getModels() {
    const r = await call('GET', '/v1/models');
    if (r.ok) S.models = r.json.models;
    return r;
  }
  const schemaOf = (doc, ref) => doc.components.schemas[ref.split('/').pop()];
  const isTensor = s => !!s && (s.$ref === '#/components/schemas/Tensor' ||
    (s.anyOf || []).some(x => x.$ref === '#/components/schemas/Tensor'));
  /* The layer kinds of the document's Layer schema: [{type, torch, description, params}]. */
  function layerKinds(doc) {
    return doc.components.schemas.Layer.oneOf.map(ref => {
      const s = schemaOf(doc, ref.$ref);
      const [type, torch] = s.properties.type.enum;
      const params = Object.entries(s.properties).filter(([k]) => k !== 'type')
        .map(([name, schema]) => ({name, schema, tensor: isTensor(schema)}));
      return {type, torch, description: s.description, params};
    });
  }
  function lossKinds(doc) {
    return doc.components.schemas.Loss.oneOf.map(ref => {
      const s = schemaOf(doc, ref.$ref);
      return {type: s.properties.type.enum[0], torch: s.title,
        classes: !!(s.properties.target.anyOf || []).some(x => x.type === 'integer')};
    });
  }

  /* ---- pages and the router --------------------------------------------------------- */
  const pages = {};
  let current = null;
  function route() {
    const id = location.hash.slice(1);
    const want = pages[id] ? id : current ? null
      : /\/docs\/?$/.test(location.pathname) ? 'api' : 'models';
    if (!want) return; /* an in-page anchor (#schema-...): stay */
    if (current && current !== want && pages[current].leave) pages[current].leave();
    for (const s of $$('.page')) s.hidden = s.id !== 'page-' + want;
    for (const a of $$('[data-nav]'))
      if (a.dataset.nav === want) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    const changed = current !== want;
    current = want;
    document.title = $('#page-' + want + ' h1').textContent + ' · relud';
    if (changed) pages[want].enter();
  }
  function go(id) {
    if (location.hash === '#' + id) route();
    else location.hash = id;
  }

  /* ---- Models -------------------------------------------------------------------------- */
  pages.models = {
    init: false,
    enter() {
      if (!this.init) {
        this.init = true;
        $('#token-form').addEventListener('submit', ev => {
          ev.preventDefault();
          if ($('#token').value.trim()) S.token = $('#token').value.trim();
          if ($('#key').value.trim()) S.key = $('#key').value.trim();
          $('#token').value = $('#key').value = '';
          this.tokenState();
          this.load();
          server();
        });
        $('#token-forget').addEventListener('click', () => {
          S.token = S.key = '';
          this.tokenState();
          this.load();
        });
        this.tokenState();
      }
      this.load();
    },
    tokenState() {
      $('#token-state').textContent = (S.token ? 'admin token set: load and unload are enabled'
        : 'no admin token: read only') + (S.key ? '; access key set' : '');
    },
    async load() {
      const box = $('#models-list'), msg = $('#models-msg');
      const r = await getModels();
      msg.textContent = '';
      if (!r.ok) { msg.append(errorBox(r, 'GET /v1/models')); return; }
      box.textContent = '';
      if (!r.json.models.length) box.append(h('p', {class: 'muted'}, 'No models in model_dir.'));
      for (const m of r.json.models) box.append(this.card(m));
    },
    card(m) {
      const body = h('div', {class: 'model-body'});
      const note = h('div', {class: 'model-note', 'aria-live': 'polite'});
      const act = (verb) => h('button', {type: 'button', class: 'secondary',
        disabled: !S.token, title: S.token ? null : 'enter the admin token above',
        onclick: () => this.control(m.name, verb, note)}, verb === 'load' ? 'Load' : 'Unload');
      const card = h('article', {class: 'card model', 'data-model': m.name, 'data-state': m.state},
        h('header', {class: 'row'}, h('h2', null, m.name),
          h('span', {class: 'badge ' + (m.state === 'READY' ? 'ok' : 'bad')}, m.state),
          h('span', {class: 'grow'}), act('load'), act('unload')),
        m.reason ? h('p', {class: 'error'}, m.reason) : null, note, body);
      if (m.state === 'READY') this.details(m.name, body);
      return card;
    },
    async control(name, verb, note) {
      const r = await call('POST', `/v2/repository/models/${encodeURIComponent(name)}/${verb}`, null,
        {token: S.token});
      if (!r.ok) { note.textContent = ''; note.append(errorBox(r, verb)); return; }
      await this.load();
      const n = $(`[data-model="${CSS.escape(name)}"] .model-note`);
      if (n) n.append(h('p', {class: 'ok'}, `${verb === 'load' ? 'Loaded' : 'Unloaded'}: ${r.json.state}`));
    },
    async details(name, body) {
      const n = encodeURIComponent(name);
      const [info, stats] = await Promise.all([call('GET', `/v1/models/${n}`),
        call('GET', `/v2/models/${n}/stats`)]);
      body.textContent = '';
      if (!info.ok) { body.append(errorBox(info, `GET /v1/models/${name}`)); return; }
      const i = info.json, shape = f => `[-1, ${f === null ? 'any' : f}]`;
      const batching = i.max_batch_size ? `max ${i.max_batch_size} rows` + (i.dynamic_batching
        ? `, dynamic (queue delay ${i.dynamic_batching.max_queue_delay_microseconds} µs, preferred ` +
          `${(i.dynamic_batching.preferred_batch_size || []).join(', ') || 'any'})` : '') : 'none';
      body.append(i.description ? h('p', null, i.description) : '',
        h('dl', {class: 'info'},
          h('dt', null, 'input'), h('dd', null, h('code', null, `${shape(i.in_features)} ${i.dtype}`)),
          h('dt', null, 'output'), h('dd', null, h('code', null, `${shape(i.out_features)} ${i.dtype}`)),
          h('dt', null, 'parameters'), h('dd', {class: 'params-total'}, thousands(i.parameters)),
          h('dt', null, 'batching'), h('dd', null, batching)),
        h('div', {class: 'scroll'}, h('table', {class: 'layers'},
          h('caption', null, `Layer stack (${i.layers.length} layers)`),
          h('thead', null, h('tr', null, ['#', 'layer', 'parameters of the kind', 'weight', 'bias', 'out',
            'count'].map(t => h('th', {scope: 'col'}, t)))),
          h('tbody', null, i.layers.map((l, k) => h('tr', null,
            h('td', null, k), h('td', null, h('code', null, l.type), ' ', h('small', null, l.torch)),
            h('td', null, Object.entries(l.params).map(([a, b]) => `${a} = ${b}`).join(', ') || '–'),
            h('td', null, l.weight_shape ? `[${l.weight_shape.join(', ')}]` : '–'),
            h('td', null, l.bias_shape ? `[${l.bias_shape.join(', ')}]` : '–'),
            h('td', null, l.out_features === null ? 'any' : l.out_features),
            h('td', {class: 'numcell'}, thousands(l.parameters))))))));
      if (stats.ok && stats.json.model_stats[0]) body.append(this.stats(stats.json.model_stats[0]));
      else if (!stats.ok) body.append(errorBox(stats, 'statistics'));
      body.append(h('p', {class: 'row'},
        h('a', {href: '#try', onclick: () => pages.try.preset('POST', '/v1/forward', JSON.stringify(
          {model: name, input: [Array(i.in_features || 4).fill(0.5)]}))}, 'Try a forward pass'),
        h('a', {href: '#diagnose', onclick: () => { pages.diagnose.want = 'model:' + name; }},
          'Diagnose for dead units')));
    },
    stats(s) {
      const ms = x => x.count ? (x.ns / x.count / 1e6).toFixed(3) + ' ms' : '–';
      const st = s.inference_stats;
      const last = s.last_inference ? new Date(s.last_inference).toLocaleTimeString() : 'never';
      return h('div', null, h('h3', null, 'Statistics'), h('dl', {class: 'info stats'},
        h('dt', null, 'inferences (samples)'), h('dd', null, thousands(s.inference_count)),
        h('dt', null, 'executions (passes)'), h('dd', null, thousands(s.execution_count)),
        h('dt', null, 'succeeded'), h('dd', null, `${st.success.count}, mean ${ms(st.success)}`),
        h('dt', null, 'failed'), h('dd', null, String(st.fail.count)),
        h('dt', null, 'mean queue / infer'), h('dd', null, `${ms(st.queue)} / ${ms(st.compute_infer)}`),
        h('dt', null, 'last inference'), h('dd', null, last)),
      s.batch_stats.length ? h('div', {class: 'scroll'}, h('table', null,
        h('caption', null, 'Executions by batch size'),
        h('thead', null, h('tr', null, ['batch size', 'executions', 'mean infer'].map(t => h('th', null, t)))),
        h('tbody', null, s.batch_stats.map(b => h('tr', null, h('td', null, b.batch_size),
          h('td', null, b.compute_infer.count), h('td', null, ms(b.compute_infer))))))) : null);
    },
  };

  /* ---- Try it -------------------------------------------------------------------------- */
  const GET_EXAMPLES = [
    {summary: 'Server metadata', method: 'GET', path: '/v2'},
    {summary: 'The models', method: 'GET', path: '/v1/models'},
    {summary: 'SimpleNN described', method: 'GET', path: '/v1/models/simple_nn'},
  ];
  pages.try = {
    init: false,
    pending: null,
    enter() {
      if (!this.init) {
        this.init = true;
        $('#try-form').addEventListener('submit', ev => { ev.preventDefault(); this.send(); });
        $('#try-body').addEventListener('keydown', ev => {
          if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); this.send(); }
        });
        $('#try-copy').addEventListener('click', () => this.copy());
        this.examples();
      }
      if (this.pending) { this.set(...this.pending); this.pending = null; }
      else if (!$('#try-body').value) this.set('POST', '/v1/forward',
        '{"input": [-2, -1, 0, 1, 2], "layers": [{"type": "relu"}]}');
    },
    preset(method, path, body) { this.pending = [method, path, body]; },
    set(method, path, body) {
      $('#try-method').value = method;
      $('#try-path').value = path;
      $('#try-body').value = body ? pretty(JSON.parse(body)) : '';
    },
    async examples() {
      const box = $('#try-examples');
      const chip = (ex, i) => h('button', {type: 'button', class: 'chip', 'data-example': i,
        onclick: () => { this.set(ex.method, ex.path, ex.body); this.send(); }}, ex.summary);
      let list = [];
      try {
        const doc = await getDoc();
        for (const [path, item] of Object.entries(doc.paths))
          for (const [method, op] of Object.entries(item)) {
            const c = op.requestBody && op.requestBody.content['application/json'];
            if (!c || !c.examples || op.security) continue;
            for (const ex of Object.values(c.examples)) {
              const e = {summary: ex.summary, method: method.toUpperCase(),
                path: ex['x-relud-path'] || path, body: JSON.stringify(ex.value)};
              if (!list.some(o => o.method === e.method && o.path === e.path && o.body === e.body)) list.push(e);
            }
          }
      } catch (r) { box.append(errorBox(r, 'GET /openapi.json')); }
      list = list.concat(GET_EXAMPLES);
      S.examples = list;
      box.append(...list.map(chip));
    },
    async send() {
      const method = $('#try-method').value, path = $('#try-path').value.trim() || '/';
      let body = $('#try-body').value.trim();
      if (method === 'GET' || method === 'DELETE') body = '';
      const admin = /^\/v2\/repository|^\/v1\/models\/./.test(path) && method !== 'GET';
      $('#try-send').disabled = true;
      const r = await call(method, path, body || null, {token: admin ? S.token : ''});
      $('#try-send').disabled = false;
      const box = $('#try-reply');
      box.hidden = false;
      const st = $('#try-status');
      st.textContent = r.status ? `${r.status}` : 'no reply';
      st.className = 'badge ' + (r.ok ? 'ok' : 'bad');
      $('#try-time').textContent = `${method} ${path} · ${r.ms.toFixed(1)} ms` + (r.id ? ` · X-Request-Id ${r.id}` : '');
      const out = $('#try-out');
      out.textContent = '';
      if (!r.status) out.append(errorBox(r));
      else if (r.json !== undefined) out.textContent = pretty(r.json);
      else out.textContent = r.text;
      out.classList.toggle('is-error', !r.ok);
      $('#try-curl').textContent = curlOf(method, path, body, admin);
      $('#try-copied').textContent = '';
      box.dataset.status = r.status;
    },
    async copy() {
      const text = $('#try-curl').textContent;
      try {
        await navigator.clipboard.writeText(text);
        $('#try-copied').textContent = 'copied';
      } catch (e) {
        const sel = getSelection(), range = document.createRange();
        range.selectNodeContents($('#try-curl'));
        sel.removeAllRanges();
        sel.addRange(range);
        $('#try-copied').textContent = 'selected: press Ctrl+C';
      }
    },
  };

  /* ---- Activations --------------------------------------------------------------------- */
  /* Slider ranges by parameter name; others get a range around their default. */
  const RANGES = {negative_slope: [0, 1, 0.01], alpha: [0.1, 3, 0.05], beta: [0.2, 5, 0.1],
    threshold: [0.5, 20, 0.5], min_val: [-3, 0, 0.1], max_val: [0, 3, 0.1]};
  const OVERLAY = ['relu', 'leaky_relu', 'elu', 'gelu', 'silu', 'softplus'];
  /* How a kind is plotted as a function of one x: elementwise kinds take the linspace and
   * "gradients": true; linear takes [N, 1] with a 1x1 weight and a bias (sliders); prelu a
   * one-slope weight; softmax-like kinds (a dim) component 0 of [x, 0], whose derivative is
   * the input gradient of grad_output [1, 0]. */
  function recipe(kind) {
    const t = kind.params.filter(p => p.tensor).map(p => p.name);
    if (t.includes('weight') && t.includes('bias')) return 'linear';
    if (t.includes('weight')) return 'slope';
    if (kind.params.some(p => p.name === 'dim')) return 'pair';
    return 'elementwise';
  }
  function controlsOf(kind) {
    const r = recipe(kind);
    if (r === 'linear') return [{name: 'weight', min: -3, max: 3, step: 0.1, value: 1},
      {name: 'bias', min: -3, max: 3, step: 0.1, value: 0}];
    if (r === 'slope') return [{name: 'weight', min: -1, max: 1, step: 0.01, value: 0.25}];
    if (r === 'pair') return [];
    return kind.params.filter(p => !p.tensor).map(p => {
      if (p.schema.enum) return {name: p.name, options: p.schema.enum, value: p.schema.default};
      const d = p.schema.default ?? 0;
      const [min, max, step] = RANGES[p.name] || [d - 5, d + 5, 0.1];
      return {name: p.name, min, max, step, value: d};
    });
  }
  function actRequest(kind, vals, xs, dtype) {
    const layer = {type: kind.type}, r = recipe(kind);
    let body;
    if (r === 'linear') {
      layer.weight = [[vals.weight]];
      layer.bias = [vals.bias];
      body = {input: xs.map(x => [x]), layers: [layer], gradients: true};
    } else if (r === 'slope') {
      layer.weight = [vals.weight];
      body = {input: xs, layers: [layer], gradients: true};
    } else if (r === 'pair') {
      body = {input: xs.map(x => [x, 0]), layers: [layer], grad_output: xs.map(() => [1, 0])};
    } else {
      Object.assign(layer, vals);
      body = {input: xs, layers: [layer], gradients: true};
    }
    if (dtype !== 'float32') body.dtype = dtype;
    return body;
  }
  function actRead(kind, reply) {
    const r = recipe(kind), o = reply.output, g = reply.gradients.input;
    if (r === 'linear' || r === 'pair') return {y: o.map(v => v[0]), dy: g.map(v => v[0])};
    return {y: o, dy: g};
  }
  pages.activations = {
    init: false,
    cards: {},
    async enter() {
      if (this.init) return;
      this.init = true;
      S.activations = this.cards;
      $('#act-form').addEventListener('submit', ev => { ev.preventDefault(); this.plotAll(); });
      $('#act-deriv').addEventListener('change', () => this.overlay());
      let doc;
      try { doc = await getDoc(); } catch (r) { $('#act-msg').append(errorBox(r, 'GET /openapi.json')); return; }
      this.kinds = layerKinds(doc);
      const pick = $('#act-pick');
      for (const k of this.kinds) {
        const id = 'act-show-' + k.type;
        pick.append(h('label', {class: 'chip'}, h('input', {type: 'checkbox', id, value: k.type,
          checked: OVERLAY.includes(k.type), onchange: () => this.overlay()}), k.torch));
      }
      $('#act-grid').append(...this.kinds.map(k => this.card(k)));
      this.plotAll();
    },
    xs() {
      const a = Number($('#act-from').value), b = Number($('#act-to').value);
      const n = Math.max(3, Math.min(4001, Math.round(Number($('#act-n').value)) || 161));
      if (!(b > a)) return null;
      return Array.from({length: n}, (_, i) => Number((a + (b - a) * i / (n - 1)).toPrecision(12)));
    },
    card(kind) {
      const ctl = controlsOf(kind), vals = {};
      const plotBox = h('div', {class: 'plot-box'});
      const err = h('div', {class: 'card-msg', 'aria-live': 'polite'});
      const run = debounce(() => this.plot(kind), 120);
      const inputs = ctl.map(c => {
        vals[c.name] = c.value;
        const id = `act-${kind.type}-${c.name}`;
        if (c.options) return h('label', {for: id}, c.name, ' ', h('select', {id, 'data-param': c.name,
          onchange: ev => { vals[c.name] = ev.target.value; run(); }},
          c.options.map(o => h('option', {selected: o === c.value}, o))));
        const out = h('output', {for: id}, String(c.value));
        return h('label', {for: id, class: 'slider'}, h('span', null, c.name, ' = ', out),
          h('input', {type: 'range', id, 'data-param': c.name, min: c.min, max: c.max, step: c.step,
            value: c.value, oninput: ev => {
              vals[c.name] = Number(ev.target.value);
              out.textContent = ev.target.value;
              run();
            }}));
      });
      const r = recipe(kind);
      const note = r === 'pair' ? `Component 0 of ${kind.type}([x, 0]) and its derivative.`
        : r === 'linear' ? 'y = weight · x + bias, a 1 × 1 Linear.' : r === 'slope' ? 'One learnt slope.' : '';
      const card = h('article', {class: 'card act', 'data-kind': kind.type, 'data-state': 'idle'},
        h('h3', null, h('code', null, kind.type), ' ', h('small', null, kind.torch)),
        h('div', {class: 'muted'}, md((kind.description || '') + (note ? ' ' + note : ''))),
        plotBox, h('div', {class: 'controls'}, inputs), err);
      this.cards[kind.type] = {kind, vals, card, plotBox, err, data: null};
      return card;
    },
    plotAll() {
      for (const k of this.kinds || []) this.plot(k);
    },
    async plot(kind) {
      const c = this.cards[kind.type], xs = this.xs();
      c.err.textContent = '';
      if (!xs) { c.err.append(h('p', {class: 'error', role: 'alert'}, '"x from" must be below "to".')); return; }
      const body = actRequest(kind, c.vals, xs, $('#act-dtype').value);
      const seq = (c.seq || 0) + 1;
      c.seq = seq;
      c.card.dataset.state = 'loading';
      const r = await call('POST', '/v1/forward', body);
      if (seq !== c.seq) return; /* a newer request is under way */
      c.request = body;
      if (!r.ok) {
        c.card.dataset.state = 'error';
        c.data = null;
        c.err.append(errorBox(r, 'relud'));
        this.overlay();
        return;
      }
      const {y, dy} = actRead(kind, r.json);
      c.data = {x: xs, y, dy};
      Plot.line(c.plotBox, {title: kind.type, x: xs, xname: 'x', height: 220, series: [
        {label: kind.type + '(x)', y}, {label: 'derivative', y: dy, dash: true, color: '#dc2626'}]});
      c.card.dataset.state = 'ok';
      c.card.dataset.ms = r.ms.toFixed(1);
      this.overlay();
    },
    overlay() {
      const deriv = $('#act-deriv').checked;
      const shown = $$('#act-pick input:checked').map(i => this.cards[i.value]).filter(c => c && c.data);
      const box = $('#act-overlay');
      if (!shown.length) { box.textContent = ''; box.append(h('p', {class: 'muted'}, 'Pick kinds to compare.')); return; }
      Plot.line(box, {title: 'ReLU and its alternatives' + (deriv ? ': derivatives' : ''), x: shown[0].data.x,
        xname: 'x', height: 300, series: shown.map(c => ({label: c.kind.torch, y: deriv ? c.data.dy : c.data.y}))});
    },
  };

  /* ---- Diagnose ------------------------------------------------------------------------- */
  /* A seeded generator (mulberry32) and normal deviates (Box-Muller), so a batch is repeatable. */
  function rng(seed) {
    let a = seed >>> 0;
    const u = () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    return {u, normal};
  }
  const r5 = v => Number(v.toPrecision(5));
  /* The demo networks: an MLP 16-48-48-48-10 with ReLUs, He-initialised; "dying" has the
   * second Linear's bias at -8 (a too-large step can leave it there): its ReLUs never fire,
   * and every layer after gets zeros; "exploding" has every weight 3x too large. */
  function demo(kind) {
    const g = rng(42), sizes = [16, 48, 48, 48, 10], layers = [];
    for (let i = 0; i + 1 < sizes.length; i++) {
      const fin = sizes[i], fout = sizes[i + 1], std = Math.sqrt(2 / fin) * (kind === 'exploding' ? 3 : 1);
      const weight = Array.from({length: fout}, () => Array.from({length: fin}, () => r5(g.normal() * std)));
      const bias = Array(fout).fill(kind === 'dying' && i === 1 ? -8 : 0);
      layers.push({type: 'linear', weight, bias});
      if (i + 2 < sizes.length) layers.push({type: 'relu'});
    }
    return layers;
  }
  const DEMOS = {healthy: 'Demo: a healthy MLP', dying: 'Demo: dying ReLU', exploding: 'Demo: exploding gradients'};
  const DEMO_NOTES = {healthy: 'An MLP 16-48-48-48-10 with ReLUs, He-initialised: Linear weights ~ N(0, 2 / fan_in), biases 0.',
    dying: 'The same MLP with the second Linear\'s biases at -8 (one step too large can leave them there): its ReLUs never fire, and every layer after it gets zeros.',
    exploding: 'The same MLP with every weight 3x too large: activations and gradients grow layer by layer, and clip_grad_norm has to clip.'};
  const CUSTOM = [{type: 'linear', weight: [[1, -1, 0.5, 0], [0.5, 0.5, -1, 1], [-1, -1, -1, -1],
    [0.2, 0.1, 0, -0.3]], bias: [0, 0, -4, 0.1]}, {type: 'relu'},
  {type: 'linear', weight: [[1, 1, 1, 1], [-1, 0.5, 0, 2]], bias: [0, 0]}];
  /* Widths of each layer's output, from the layers (inline) or the model's description. */
  function widths(layers, inWidth) {
    let w = inWidth;
    return layers.map(l => {
      if (l.out_features !== undefined) w = l.out_features ?? w;
      else if (Array.isArray(l.weight) && Array.isArray(l.weight[0]) && (l.type || '').toLowerCase() === 'linear') w = l.weight.length;
      return w;
    });
  }
  function parseData(text) {
    const t = text.trim();
    if (!t) throw new Error('no data: paste JSON rows or CSV, or upload a file');
    if (t[0] === '[' || t[0] === '{') {
      const v = JSON.parse(t);
      return Array.isArray(v) ? (Array.isArray(v[0]) ? v : [v]) : v.input;
    }
    return t.split(/\r?\n/).filter(l => l.trim() && !/^[a-zA-Z#]/.test(l.trim()))
      .map(l => l.split(/[,;\s]+/).filter(Boolean).map(Number));
  }
  pages.diagnose = {
    init: false,
    want: null,
    async enter() {
      if (!this.init) {
        this.init = true;
        $('#diag-form').addEventListener('submit', ev => { ev.preventDefault(); this.run(); });
        $('#diag-net').addEventListener('change', () => this.netChanged());
        $('#diag-src').addEventListener('change', () => this.srcChanged());
        $('#diag-loss').addEventListener('change', () => this.lossChanged());
        $('#diag-file').addEventListener('change', async ev => {
          const f = ev.target.files[0];
          if (f) { $('#diag-data').value = await f.text(); $('#diag-src').value = 'paste'; this.srcChanged(); }
        });
        let doc = null;
        try { doc = await getDoc(); } catch (r) { $('#diag-out').append(errorBox(r, 'GET /openapi.json')); }
        const loss = $('#diag-loss');
        loss.append(h('option', {value: ''}, 'none: forward and stats only'),
          h('option', {value: 'sum'}, 'output.sum() ("gradients": true)'));
        this.losses = doc ? lossKinds(doc) : [];
        for (const l of this.losses)
          loss.append(h('option', {value: l.type, selected: l.type === 'cross_entropy'}, `${l.type} (${l.torch})`));
        $('#diag-layers').value = pretty(CUSTOM);
        this.srcChanged();
        this.lossChanged();
      }
      await this.fillNets();
      const first = !this.ran;
      if (this.want) { $('#diag-net').value = this.want; this.want = null; }
      await this.netChanged();
      if (first) { this.ran = true; this.run(); } /* the dying-ReLU demo, at once */
    },
    async fillNets() {
      const sel = $('#diag-net'), keep = sel.value;
      const r = await getModels();
      sel.textContent = '';
      const served = h('optgroup', {label: 'Served models'});
      if (r.ok) for (const m of r.json.models)
        if (m.state === 'READY') served.append(h('option', {value: 'model:' + m.name}, m.name));
      const demos = h('optgroup', {label: 'Demos (inline layers)'},
        Object.entries(DEMOS).map(([k, v]) => h('option', {value: 'demo:' + k, selected: k === 'dying'}, v)));
      sel.append(demos, served, h('option', {value: 'custom'}, 'Custom layers (JSON below)'));
      if (keep && [...sel.options].some(o => o.value === keep)) sel.value = keep;
      if (!r.ok) $('#diag-out').append(errorBox(r, 'GET /v1/models'));
    },
    async netChanged() {
      const v = $('#diag-net').value;
      const custom = v === 'custom';
      $('#diag-layers').hidden = $('#diag-layers-label').hidden = !custom;
      $('#diag-note').textContent = v.startsWith('demo:') ? DEMO_NOTES[v.slice(5)] : v === 'custom'
        ? 'The /v1 layer list: {"type": ..., parameters}; Linear weights are [out, in].' : '';
      this.info = null;
      if (v.startsWith('model:')) {
        const r = await call('GET', '/v1/models/' + encodeURIComponent(v.slice(6)));
        if (r.ok) { this.info = r.json; if (r.json.in_features) $('#diag-width').value = r.json.in_features; }
      } else if (v.startsWith('demo:')) {
        $('#diag-width').value = 16;
      } else {
        try {
          const l = JSON.parse($('#diag-layers').value);
          if (l[0] && l[0].weight) $('#diag-width').value = l[0].weight[0].length;
        } catch (e) { /* checked when run */ }
      }
    },
    srcChanged() {
      const paste = $('#diag-src').value === 'paste';
      for (const id of ['#diag-rows', '#diag-mean', '#diag-scale', '#diag-seed']) $(id).disabled = paste;
      $('#diag-data').disabled = !paste;
    },
    lossChanged() {
      const v = $('#diag-loss').value;
      $('#diag-target').disabled = !v || v === 'sum';
    },
    /* The request, or throws an Error with a message for the person. */
    build() {
      const v = $('#diag-net').value, body = {stats: true};
      let layers = null;
      if (v.startsWith('model:')) body.model = v.slice(6);
      else if (v.startsWith('demo:')) layers = demo(v.slice(5));
      else {
        try { layers = JSON.parse($('#diag-layers').value); } catch (e) { throw new Error('layers: ' + e.message); }
      }
      if (layers) body.layers = layers;
      const width = Math.max(1, Math.round(Number($('#diag-width').value)) || 1);
      let input;
      if ($('#diag-src').value === 'paste') input = parseData($('#diag-data').value);
      else {
        const g = rng(Number($('#diag-seed').value) || 1), n = Math.max(1, Math.round(Number($('#diag-rows').value)) || 1);
        const mean = Number($('#diag-mean').value) || 0, scale = Number($('#diag-scale').value);
        const draw = $('#diag-src').value === 'uniform' ? () => (g.u() * 2 - 1) * scale + mean : () => g.normal() * scale + mean;
        input = Array.from({length: n}, () => Array.from({length: width}, () => r5(draw())));
      }
      body.input = input;
      const w = widths(this.info ? this.info.layers : layers || [], width);
      const out = w.length ? w[w.length - 1] : width;
      const loss = $('#diag-loss').value;
      if (loss === 'sum') body.gradients = true;
      else if (loss) {
        const lk = this.losses.find(l => l.type === loss), g = rng(7), zeros = $('#diag-target').value === 'zeros';
        const n = Array.isArray(input) ? input.length : 1;
        const target = lk && lk.classes
          ? Array.from({length: n}, () => zeros ? 0 : Math.floor(g.u() * out))
          : Array.from({length: n}, () => Array.from({length: out}, () => zeros ? 0
            : loss === 'bce_with_logits' ? r5(g.u()) : r5(g.normal())));
        body.loss = {type: loss, target};
      }
      const clip = $('#diag-clip').value.trim();
      if ((body.loss || body.gradients) && clip) body.clip_grad_norm = Number(clip);
      return {body, widths: w};
    },
    async run() {
      const out = $('#diag-out');
      out.textContent = '';
      let req;
      try { req = this.build(); } catch (e) {
        out.append(h('div', {class: 'error', role: 'alert'}, e.message));
        return;
      }
      $('#diag-run').disabled = true;
      const r = await call('POST', '/v1/forward', req.body);
      $('#diag-run').disabled = false;
      $('#diag-time').textContent = `${r.ms.toFixed(1)} ms`;
      if (!r.ok) { out.append(errorBox(r, 'relud')); return; }
      S.lastDiagnosis = {request: req.body, reply: r.json};
      out.append(this.render(r.json, req));
    },
    render(rep, req) {
      const layers = rep.stats.layers, w = req.widths;
      const rows = layers.map((s, i) => ({i, s, width: w[i] || 0, dead: s.dead_units.length}));
      const dead = rows.filter(x => x.width && x.dead === x.width);
      const partial = rows.filter(x => x.dead && x.dead < x.width);
      const norms = rows.flatMap(x => [x.s.weight_grad_norm, x.s.bias_grad_norm]).filter(v => v !== undefined);
      const maxNorm = Math.max(0, ...norms);
      const verdict = dead.length
        ? h('div', {class: 'verdict bad', role: 'alert'}, h('b', null, `Dead: ${dead.length} layer${dead.length > 1 ? 's' : ''}. `),
          dead.map(x => `#${x.i} ${x.s.type} (${x.dead}/${x.width} units 0 for every sample)`).join('; '),
          '. No gradient flows back through a dead layer: the layers before it stop learning.')
        : h('div', {class: 'verdict ' + (partial.length ? 'warn' : 'good')},
          partial.length ? `No layer is all dead; ${partial.length} layer(s) have dead units.` : 'No dead units in this batch.');
      const g = rep.gradients;
      let normLine = null;
      if (g) {
        const total = g.total_norm ?? Math.sqrt(norms.reduce((a, v) => a + v * v, 0));
        const clip = req.body.clip_grad_norm;
        normLine = h('p', {class: 'norms'}, 'Gradient total norm ', h('b', {class: 'total-norm'}, fmtNum(total)),
          g.total_norm !== undefined ? ' (clip_grad_norm\'s total_norm, before clipping)' : ' (from the per-layer norms)',
          clip ? (total > clip ? `: clipped to ${clip}, every gradient scaled by ${fmtNum(clip / total)}.` : `: under ${clip}, not clipped.`) : '.',
          rep.loss !== undefined ? h('span', null, ' Loss ', h('b', null, fmtNum(rep.loss)), '.') : '');
      }
      const bar = (frac, cls) => h('span', {class: 'bar ' + (cls || '')}, h('i', {style: {width: (100 * Math.max(0, Math.min(1, frac))).toFixed(1) + '%'}}));
      const logBar = v => {
        if (v === undefined) return '–';
        if (!(v > 0) || !(maxNorm > 0)) return h('span', {class: 'zero-grad'}, '0 (no gradient)');
        const lo = Math.log10(maxNorm) - 6, frac = (Math.log10(v) - lo) / 6;
        return h('span', {class: 'normcell'}, bar(frac, 'norm'), ' ', fmtNum(v));
      };
      const heat = x => {
        if (!x.width) return h('span', {class: 'muted'}, `${x.dead} dead`);
        const set = new Set(x.s.dead_units), n = Math.min(x.width, 256);
        const cells = h('span', {class: 'units', role: 'img', 'aria-label': `${x.dead} of ${x.width} units dead`});
        for (let u = 0; u < n; u++) cells.append(h('i', {class: set.has(u) ? 'd' : '', title: `unit ${u}: ${set.has(u) ? 'dead' : 'alive'}`}));
        return h('span', null, h('span', {class: 'count'}, `${x.dead}/${x.width}`), ' ', cells,
          x.width > n ? h('small', null, ` +${x.width - n}`) : '');
      };
      const table = h('table', {class: 'diag'},
        h('caption', null, `Per layer, ${Array.isArray(req.body.input) ? req.body.input.length : 1} samples`),
        h('thead', null, h('tr', null, ['#', 'layer', 'zeros', 'dead units', 'weight grad norm', 'bias grad norm']
          .map(t => h('th', {scope: 'col'}, t)))),
        h('tbody', null, rows.map(x => h('tr', {class: x.width && x.dead === x.width ? 'dead' : x.dead ? 'partial' : '',
          'data-layer': x.i, 'data-type': x.s.type, 'data-dead': x.dead, 'data-width': x.width,
          'data-zero-fraction': x.s.zero_fraction},
        h('td', null, x.i), h('td', null, h('code', null, x.s.type)),
        h('td', null, bar(x.s.zero_fraction, x.s.zero_fraction === 1 ? 'full' : ''), ' ', (100 * x.s.zero_fraction).toFixed(1) + '%'),
        h('td', null, heat(x)), h('td', null, logBar(x.s.weight_grad_norm)), h('td', null, logBar(x.s.bias_grad_norm))))));
      return h('div', {class: 'card'}, verdict, normLine, h('div', {class: 'scroll'}, table),
        h('p', {class: 'muted'}, 'Zeros: the share of the layer\'s outputs exactly 0. A dead unit is 0 for every sample of the batch. Gradient norms on a log scale (a bar spans 6 decades).'));
    },
  };

  /* ---- Training ------------------------------------------------------------------------ */
  const FINISHED = ['done', 'failed', 'cancelled'];
  const STATE_CLASS = {running: 'run', done: 'ok', failed: 'bad', cancelled: 'bad'};
  const jobName = j => [h('code', null, j.model), j.save_as ? [' → ', h('code', null, j.save_as)] : ''];
  const dur = s => s === null || s === undefined ? '–' : s < 120 ? `${Number(s.toFixed(1))} s` : `${Math.round(s / 60)} min`;
  /* A log axis when the positive values span more than 3 decades (exploding norms and losses). */
  function wide(...arrays) {
    let lo = Infinity, hi = 0;
    for (const a of arrays) for (const v of a) if (v > 0 && v < Infinity) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return hi / lo > 1e3;
  }
  /* An example body for a model of nin -> nout features, on seeded random rows. */
  function trainExample(steady, name, nin, nout) {
    const g = rng(steady ? 3 : 5), rows = (n, w) => Array.from({length: n}, () => Array.from({length: w}, () => Number(g.normal().toFixed(3))));
    return Object.assign({input: rows(32, nin), target: rows(32, nout), loss: {type: 'mse'}}, steady
      ? {optimizer: {type: 'adam', lr: 0.01}, batch_size: 8, epochs: 50, clip_grad_norm: 1, validation: {input: rows(8, nin), target: rows(8, nout)}}
      : {optimizer: {type: 'sgd', lr: 2}, batch_size: 32, epochs: 100}, {save_as: name + '_tuned'});
  }
  pages.train = {
    init: false,
    timer: 0,
    seq: 0,
    sel: null,
    job: null,
    jobs: [],
    info: {}, /* GET /v1/models/{name} by name: the layers' widths */
    enter() {
      if (!this.init) {
        this.init = true;
        S.training = this;
        $('#train-refresh').addEventListener('click', () => this.select(this.sel));
        $('#train-form').addEventListener('submit', ev => { ev.preventDefault(); this.start(); });
        $('#train-model').addEventListener('change', () => this.examples());
      }
      this.tokenState();
      this.fillModels();
      this.refresh();
    },
    leave() { clearTimeout(this.timer); this.timer = 0; this.seq++; },
    tokenState() {
      $('#train-start').disabled = !S.token;
      $('#train-token').textContent = S.token ? '' : 'no admin token: enter it on Models to start or cancel a job';
    },
    async fillModels() {
      const sel = $('#train-model'), keep = sel.value, r = await getModels();
      sel.textContent = '';
      if (!r.ok) { $('#train-form-msg').append(errorBox(r, 'GET /v1/models')); return; }
      for (const m of r.json.models) if (m.state === 'READY') sel.append(h('option', {value: m.name}, m.name));
      if ([...sel.options].some(o => o.value === keep)) sel.value = keep;
      this.examples();
    },
    async describe(name) {
      const r = this.info[name] ? null : await call('GET', '/v1/models/' + encodeURIComponent(name));
      if (r && r.ok) this.info[name] = r.json;
      return this.info[name];
    },
    async examples() {
      const box = $('#train-examples'), name = $('#train-model').value;
      box.textContent = '';
      const i = name && await this.describe(name);
      if (!i || name !== $('#train-model').value) return;
      const set = steady => { $('#train-body').value = pretty(trainExample(steady, name, i.in_features || 4, i.out_features || i.in_features || 4)); };
      box.append(h('button', {type: 'button', class: 'chip', onclick: () => set(true)}, 'Adam, clipped, with validation'),
        h('button', {type: 'button', class: 'chip', onclick: () => set(false)}, 'SGD, learning rate too high'));
      if (!$('#train-body').value.trim()) set(true);
    },
    async start() {
      const msg = $('#train-form-msg'), name = $('#train-model').value;
      msg.textContent = '';
      let body;
      try { body = JSON.parse($('#train-body').value); } catch (e) {
        msg.append(h('div', {class: 'error', role: 'alert'}, 'body: ' + e.message));
        return;
      }
      $('#train-start').disabled = true;
      const r = await call('POST', `/v1/models/${encodeURIComponent(name)}/train`, body, {token: S.token});
      this.tokenState();
      if (!r.ok) { msg.append(errorBox(r, `POST /v1/models/${name}/train`)); return; }
      msg.append(h('p', {class: 'ok'}, `Job ${r.json.id} ${r.json.state}.`));
      this.select(r.json.id);
    },
    select(id) { this.sel = id; this.job = null; this.refresh(); },
    /* The list and the selected job; again in a second while a job is queued or running. */
    async refresh() {
      clearTimeout(this.timer);
      this.timer = 0;
      const seq = ++this.seq, stale = () => current !== 'train' || seq !== this.seq;
      const r = await call('GET', '/v1/train');
      if (stale()) return;
      $('#train-msg').textContent = '';
      if (!r.ok) $('#train-msg').append(errorBox(r, 'GET /v1/train'));
      else this.jobs = r.json.jobs;
      if (!this.sel && this.jobs.length) this.sel = this.jobs[this.jobs.length - 1].id;
      if (this.sel && !(this.job && FINISHED.includes(this.job.state))) {
        const j = await call('GET', '/v1/train/' + encodeURIComponent(this.sel));
        if (j.ok) await this.describe(j.json.model);
        if (stale()) return;
        if (j.ok) {
          this.job = j.json;
          this.jobs = this.jobs.map(x => x.id === j.json.id ? j.json : x);
          this.draw();
        } else {
          $('#train-job').textContent = '';
          $('#train-job').append(errorBox(j, 'GET /v1/train/' + this.sel));
          this.sel = null;
        }
      }
      this.list();
      const live = r.ok && this.jobs.some(x => !FINISHED.includes(x.state));
      $('#train-status').textContent = live ? `updated ${new Date().toLocaleTimeString()}, every second while a job runs`
        : this.jobs.length ? 'no job running' : '';
      if (live) this.timer = setTimeout(() => this.refresh(), 1000);
    },
    list() {
      const t = $('#train-jobs');
      t.textContent = '';
      if (!this.jobs.length) { t.append(h('caption', {class: 'muted'}, 'No training jobs yet.')); return; }
      t.append(h('thead', null, h('tr', null, ['job', 'model', 'state', 'step', 'elapsed', 'eta'].map(c => h('th', {scope: 'col'}, c)))),
        h('tbody', null, this.jobs.slice().reverse().map(j => h('tr', {'data-job': j.id, class: j.id === this.sel ? 'sel' : ''},
          h('td', null, h('button', {type: 'button', class: 'secondary', 'aria-pressed': String(j.id === this.sel),
            onclick: () => this.select(j.id)}, 'Job ' + j.id)),
          h('td', null, jobName(j)), h('td', null, h('span', {class: 'badge ' + (STATE_CLASS[j.state] || '')}, j.state)),
          h('td', null, `${thousands(j.step)} / ${thousands(j.total_steps)} `,
            h('span', {class: 'bar norm'}, h('i', {style: {width: (100 * j.step / Math.max(1, j.total_steps)).toFixed(1) + '%'}}))),
          h('td', null, dur(j.elapsed_s)), h('td', null, FINISHED.includes(j.state) ? '–' : dur(j.eta_s))))));
    },
    async cancel(id) {
      const r = await call('DELETE', '/v1/train/' + encodeURIComponent(id), null, {token: S.token});
      if (!r.ok) { $('#train-note').textContent = ''; $('#train-note').append(errorBox(r, 'cancel')); return; }
      this.select(id);
    },
    draw() {
      const j = this.job, hist = j.history, live = !FINISHED.includes(j.state), clip = j.clip_grad_norm;
      const key = `${j.id}:${j.state}:${hist.length}:${hist.length && hist[hist.length - 1].step}`;
      if ($('#train-card') && $('#train-card').dataset.key === key) return; /* nothing new */
      const refocus = document.activeElement && document.activeElement.id === 'train-cancel';
      const grid = h('div', {class: 'grid train-plots'});
      $('#train-job').textContent = '';
      $('#train-job').append(h('div', {class: 'card', id: 'train-card', 'data-key': key, 'data-job': j.id, 'data-state': j.state,
        'data-history': hist.length}, h('header', {class: 'row'},
        h('h2', null, `Job ${j.id}: `, jobName(j)),
        h('span', {class: 'badge ' + (STATE_CLASS[j.state] || '')}, j.state), h('span', {class: 'grow'}),
        live ? h('button', {type: 'button', id: 'train-cancel', class: 'secondary', disabled: !S.token,
          title: S.token ? null : 'enter the admin token on Models', onclick: () => this.cancel(j.id)}, 'Cancel') : null),
      h('p', null, `step ${thousands(j.step)} of ${thousands(j.total_steps)}, epoch ${j.epoch}; elapsed ${dur(j.elapsed_s)}` +
        (live ? `, eta ${dur(j.eta_s)}` : '') + `; next lr ${fmtNum(j.lr)}` +
        (j.history_stride > 1 ? `; one step in ${j.history_stride} recorded` : '') + (j.stopped_early ? '; stopped early' : '') +
        (j.result ? `; installed as ${j.result.model}${j.result.created ? ' (new)' : ''}` : '') + '.'),
      j.error ? h('div', {class: 'error train-error', role: 'alert'}, h('b', null, j.state + ': '), h('span', {class: 'msg'}, j.error)) : null,
      h('div', {id: 'train-note', 'aria-live': 'polite'}), grid));
      if (refocus && $('#train-cancel')) $('#train-cancel').focus();
      if (!hist.length) { grid.append(h('p', {class: 'muted'}, j.state === 'queued' ? 'Queued: waiting for a worker.' : 'No step recorded.')); return; }
      const x = hist.map(e => e.step), col = k => hist.map(e => e[k]), types = j.layers;
      const plot = (id, title, spec) => {
        const d = h('div', {id});
        grid.append(h('div', {class: 'card'}, h('h3', null, title), d));
        Plot.line(d, Object.assign({title, x, xname: 'step', xlabel: 'step', height: 220, xfmt: v => thousands(Math.round(v))}, spec));
      };
      const loss = col('loss'), val = col('val_loss');
      plot('train-loss', 'Loss', {log: wide(loss, val), series: [{label: 'loss (batch)', y: loss}]
        .concat(val.some(v => v !== null) ? [{label: 'val_loss', y: val, connect: true, dash: true}] : [])});
      plot('train-lr', 'Learning rate', {ymin: 0, series: [{label: 'lr', y: col('lr')}]});
      const gs = [{label: 'total grad_norm (dots: clipped)', y: col('grad_norm'), marks: col('clipped')}];
      types.forEach((t, k) => {
        const y = hist.map(e => e.layers[k].weight_grad_norm);
        if (y.some(v => v !== null)) gs.push({label: `#${k} ${t}`, y, width: 1});
      });
      if (clip) gs.push({label: `clip_grad_norm = ${fmtNum(clip)}`, y: x.map(() => clip), dash: true, color: '#dc2626'});
      plot('train-grad', 'Gradient norms (before clipping)', {log: wide(...gs.map(s => s.y)), series: gs});
      /* Dead units: a share of the layer's width (from the model's description), else counts. */
      const info = this.info[j.model], widths = info && info.layers.length === types.length && info.layers.map(l => l.out_features);
      const ds = [];
      types.forEach((t, k) => {
        const w = widths && widths[k];
        if (t !== 'linear' || hist.some(e => e.layers[k].dead_units))
          ds.push({label: `#${k} ${t}`, y: hist.map(e => w ? e.layers[k].dead_units / w : e.layers[k].dead_units)});
      });
      const share = !!widths;
      plot('train-dead', share ? 'Dead units (share of the layer)' : 'Dead units', {ymin: 0, ymax: share ? 1 : undefined,
        yfmt: share ? v => Math.round(v * 1000) / 10 + '%' : fmtNum, series: ds.length ? ds : [{label: 'none', y: x.map(() => 0)}]});
    },
  };

  /* ---- Live ---------------------------------------------------------------------------- */
  function parseProm(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
      out.push({name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3])});
    }
    return out;
  }
  function quantile(q, les, cum) {
    const total = cum[cum.length - 1];
    if (!(total > 0)) return null;
    const rank = q * total;
    for (let i = 0; i < les.length; i++)
      if (cum[i] >= rank) {
        if (les[i] === Infinity) return i ? les[i - 1] : null;
        const lo = i ? les[i - 1] : 0, clo = i ? cum[i - 1] : 0;
        return lo + (les[i] - lo) * (rank - clo) / Math.max(1e-12, cum[i] - clo);
      }
    return null;
  }
  /* One scrape, summed the way the page shows it. */
  function sample(series, t) {
    const s = {t, req: {}, err: {}, cls: {}, buckets: {}, gauges: {}, info: null};
    for (const x of series) {
      const L = x.labels;
      if (x.name === 'relud_requests_total') {
        s.req[L.route] = (s.req[L.route] || 0) + x.value;
        if (Number(L.code) >= 400 || L.code === 'other') s.err[L.route] = (s.err[L.route] || 0) + x.value;
      } else if (x.name === 'relud_errors_total') s.cls[L.class] = x.value;
      else if (x.name === 'relud_request_duration_seconds_bucket') {
        const b = s.buckets[L.route] || (s.buckets[L.route] = {});
        b[L.le] = x.value;
      } else if (x.name === 'relud_build_info') s.info = L;
      else if (!Object.keys(L).length) s.gauges[x.name] = x.value;
    }
    return s;
  }
  const sum = o => Object.values(o).reduce((a, v) => a + v, 0);
  /* Latency quantiles between two samples, over the routes given (all when null). */
  function window2(a, b, routes) {
    const les = new Map();
    for (const [route, bk] of Object.entries(b.buckets)) {
      if (routes && !routes.includes(route)) continue;
      for (const [le, v] of Object.entries(bk)) {
        const prev = (a.buckets[route] || {})[le] || 0;
        les.set(le, (les.get(le) || 0) + v - prev);
      }
    }
    const keys = [...les.keys()].sort((x, y) => Number(x === '+Inf' ? Infinity : x) - Number(y === '+Inf' ? Infinity : y));
    const lv = keys.map(k => k === '+Inf' ? Infinity : Number(k)), cum = keys.map(k => les.get(k));
    const ms = q => { const v = quantile(q, lv, cum); return v === null ? null : v * 1000; };
    return {p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), n: cum.length ? cum[cum.length - 1] : 0};
  }
  const secs = v => `${Plot.fmt(v)} s`;
  pages.live = {
    init: false,
    hist: [],
    timer: 0,
    paused: false,
    enter() {
      if (!this.init) {
        this.init = true;
        $('#live-every').addEventListener('change', () => this.start());
        $('#live-pause').addEventListener('click', () => {
          this.paused = !this.paused;
          $('#live-pause').textContent = this.paused ? 'Resume' : 'Pause';
          $('#live-pause').setAttribute('aria-pressed', String(this.paused));
          this.start();
        });
        $('#live-load').addEventListener('click', () => this.load());
      }
      this.start();
    },
    leave() { clearTimeout(this.timer); this.timer = 0; },
    start() {
      clearTimeout(this.timer);
      this.timer = 0;
      if (!this.paused) this.tick();
    },
    async tick() {
      const r = await call('GET', '/metrics');
      if (current !== 'live') return;
      const status = $('#live-status');
      if (!r.ok) { status.textContent = ''; status.append(errorBox(r, 'GET /metrics')); }
      else {
        const s = sample(parseProm(r.text), performance.now() / 1000);
        this.hist.push(s);
        if (this.hist.length > 61) this.hist.shift();
        status.textContent = `updated ${new Date().toLocaleTimeString()}`;
        this.draw();
      }
      if (!this.paused) this.timer = setTimeout(() => this.tick(), Number($('#live-every').value));
    },
    async load() {
      const ok = {input: [-2, -1, 0, 1, 2], layers: [{type: 'relu'}]};
      const bad = {input: [1, 2], layers: [{type: 'leaky_relu', negative_slop: 0.2}]};
      await Promise.all(Array.from({length: 20}, (_, i) => call('POST', '/v1/forward', i % 5 === 4 ? bad : ok)));
      $('#live-status').textContent = 'sent 20 requests (4 of them bad)';
    },
    draw() {
      const H = this.hist, last = H[H.length - 1];
      const info = $('#live-info'), g = last.gauges, bi = last.info || {};
      info.textContent = '';
      const item = (k, v, cls) => info.append(h('dt', null, k), h('dd', {class: cls}, v));
      item('relud', bi.version || '?');
      item('BLAS', `${bi.blas || '?'}, kernel ${bi.blas_core || '?'}` + (bi.blas_core_source ? ` (${bi.blas_core_source})` : ''), 'blas');
      const threads = ['threads', 'blas_threads', 'batch_workers'].filter(k => bi[k] !== undefined || g['relud_' + k] !== undefined)
        .map(k => `${k} ${bi[k] ?? g['relud_' + k]}`);
      item('threads', threads.length ? threads.join(', ') : 'not in /metrics', 'threads');
      item('in flight', String(g.relud_inflight_requests ?? '?'));
      item('open connections', String(g.relud_open_connections ?? '?'));
      item('ready', g.relud_ready === 1 ? 'yes' : 'no');
      if (H.length < 2) {
        for (const id of ['#live-rate', '#live-lat', '#live-err']) $(id).textContent = 'collecting: two scrapes make a rate…';
        return;
      }
      const pts = H.slice(1).map((b, i) => ({a: H[i], b, dt: Math.max(1e-3, b.t - H[i].t)}));
      const x = pts.map(p => r5(p.b.t - last.t));
      const rate = (p, f) => Math.max(0, (f(p.b) - f(p.a)) / p.dt);
      const busy = Object.keys(last.req).map(route => ({route, n: (last.req[route] || 0) - (H[0].req[route] || 0)}))
        .filter(z => z.n > 0).sort((a, b) => b.n - a.n).slice(0, 4).map(z => z.route);
      Plot.line($('#live-rate'), {title: 'requests per second', x, xname: 's', xfmt: secs, ymin: 0, height: 200,
        series: [{label: 'all', y: pts.map(p => rate(p, s => sum(s.req)))}]
          .concat(busy.map(route => ({label: route, y: pts.map(p => rate(p, s => s.req[route] || 0))})))});
      const lat = pts.map(p => window2(p.a, p.b, null));
      Plot.line($('#live-lat'), {title: 'latency', x, xname: 's', xfmt: secs, ymin: 0, height: 200,
        series: ['p50', 'p90', 'p99'].map(q => ({label: q, y: lat.map(l => l[q])}))});
      const classes = Object.keys(last.cls).filter(c => (last.cls[c] || 0) - (H[0].cls[c] || 0) > 0);
      Plot.line($('#live-err'), {title: 'errors per second', x, xname: 's', xfmt: secs, ymin: 0, height: 200,
        series: classes.length ? classes.map(c => ({label: c, y: pts.map(p => rate(p, s => s.cls[c] || 0))}))
          : [{label: 'all', y: pts.map(p => rate(p, s => sum(s.cls)))}]});
      const first = H[0], span = Math.max(1e-3, last.t - first.t);
      const routes = Object.keys(last.req).sort((a, b) => last.req[b] - last.req[a]);
      const t = $('#live-routes');
      t.textContent = '';
      t.append(h('caption', null, `Over the last ${Math.round(span)} s; totals since relud started`),
        h('thead', null, h('tr', null, ['route', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'errors'].map(c => h('th', {scope: 'col'}, c)))),
        h('tbody', null, routes.map(route => {
          const w = window2(first, last, [route]);
          return h('tr', {'data-route': route}, h('td', null, h('code', null, route)),
            h('td', null, fmtNum(((last.req[route] || 0) - (first.req[route] || 0)) / span)),
            h('td', null, fmtNum(w.p50)), h('td', null, fmtNum(w.p99)),
            h('td', {class: 'total'}, String(last.req[route])), h('td', {class: last.err[route] ? 'bad' : ''}, String(last.err[route] || 0)));
        })));
    },
  };

  /* ---- API (the OpenAPI document, rendered) -------------------------------------------- */
  pages.api = {
    init: false,
    async enter() {
      if (this.init) return;
      this.init = true;
      $('#api-json').href = API + '/openapi.json';
      const out = $('#api-out');
      let doc;
      try { doc = await getDoc(); } catch (r) { out.append(errorBox(r, 'GET /openapi.json')); this.init = false; return; }
      out.append(this.render(doc));
    },
    refLink(ref) {
      const name = ref.split('/').pop();
      return h('a', {href: '#schema-' + name, onclick: ev => {
        ev.preventDefault();
        const d = document.getElementById('schema-' + name);
        if (d) { d.open = true; d.scrollIntoView(); d.querySelector('summary').focus(); }
      }}, name);
    },
    schemaLabel(s) {
      if (!s) return '–';
      if (s.$ref) return this.refLink(s.$ref);
      if (s.type === 'array' && s.items && s.items.$ref) return h('span', null, 'array of ', this.refLink(s.items.$ref));
      if (s.enum) return h('code', null, s.enum.join(' | '));
      return h('code', null, [].concat(s.type || 'any').join(' | '));
    },
    /* The JSON of a schema with every $ref a link. */
    schemaJson(s) {
      const pre = h('pre', {class: 'mono schema'});
      const text = pretty(s);
      const re = /"\$ref": "(#\/components\/schemas\/[^"]+)"/g;
      let at = 0;
      for (const m of text.matchAll(re)) {
        pre.append(text.slice(at, m.index), '"$ref": "', this.refLink(m[1]), '"');
        at = m.index + m[0].length;
      }
      pre.append(text.slice(at));
      return pre;
    },
    resolve(doc, r) { return r && r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r; },
    op(doc, path, method, o) {
      const d = h('details', {class: 'op', id: 'op-' + o.operationId},
        h('summary', null, h('span', {class: 'method m-' + method}, method.toUpperCase()), ' ', h('code', null, path),
          ' ', h('span', {class: 'muted'}, o.summary)));
      d.append(md(o.description));
      if (o.security) d.append(h('p', {class: 'warn'}, 'Needs ', h('code', null, 'Authorization: Bearer <admin_token>'), '.'));
      if (o.parameters) d.append(h('div', {class: 'scroll'}, h('table', null, h('caption', null, 'Parameters'),
        h('tbody', null, o.parameters.map(p => h('tr', null, h('td', null, h('code', null, p.name)), h('td', null, p.in + (p.required ? ', required' : '')),
          h('td', null, this.schemaLabel(p.schema)), h('td', null, p.description || '')))))));
      const rb = o.requestBody;
      if (rb) {
        d.append(h('h4', null, 'Request body'), rb.description ? md(rb.description) : '');
        for (const [ct, c] of Object.entries(rb.content)) {
          d.append(h('p', null, h('code', null, ct), ': ', this.schemaLabel(c.schema)));
          for (const ex of Object.values(c.examples || {})) {
            const p = ex['x-relud-path'] || path;
            d.append(h('div', {class: 'example'}, h('div', {class: 'row'}, h('b', null, ex.summary), h('span', {class: 'grow'}),
              o.security ? null : h('a', {href: '#try', class: 'button secondary', onclick: () => pages.try.preset(method.toUpperCase(), p, JSON.stringify(ex.value))}, 'Open in Try it')),
            h('pre', {class: 'mono'}, pretty(ex.value))));
          }
        }
      }
      d.append(h('h4', null, 'Responses'), h('div', {class: 'scroll'}, h('table', {class: 'responses'}, h('tbody', null,
        Object.entries(o.responses).map(([code, r0]) => {
          const r = this.resolve(doc, r0);
          const cts = Object.entries(r.content || {});
          return h('tr', {'data-status': code}, h('td', null, h('b', null, code)), h('td', null, md(r.description, 'span')),
            h('td', null, cts.length ? cts.map(([ct, c]) => h('div', null, h('code', null, ct), ' ', this.schemaLabel(c.schema))) : 'no body'));
        })))));
      return d;
    },
    render(doc) {
      const f = h('div');
      f.append(h('div', {class: 'card'}, h('h2', null, `${doc.info.title} ${doc.info.version}`), h('p', null, doc.info.summary || ''), md(doc.info.description)));
      const ops = [];
      for (const [path, item] of Object.entries(doc.paths))
        for (const [method, o] of Object.entries(item)) ops.push({path, method, o});
      for (const tag of doc.tags) {
        const mine = ops.filter(x => (x.o.tags || [])[0] === tag.name);
        if (!mine.length) continue;
        f.append(h('section', {class: 'card tag'}, h('h2', null, tag.name), tag.description ? md(tag.description) : '',
          mine.map(x => this.op(doc, x.path, x.method, x.o))));
      }
      const sch = h('section', {class: 'card'}, h('h2', null, 'Schemas'));
      for (const [name, s] of Object.entries(doc.components.schemas))
        sch.append(h('details', {id: 'schema-' + name, class: 'schema'}, h('summary', null, h('code', null, name),
          s.title ? ` ${s.title}` : '', s.description ? h('span', {class: 'muted'}, ' ' + s.description.split('. ')[0]) : ''), this.schemaJson(s)));
      f.append(sch);
      return f;
    },
  };

  /* ---- start ----------------------------------------------------------------------------- */
  async function server() {
    const box = $('#server');
    const [meta, ready] = await Promise.all([call('GET', '/v2'), call('GET', '/v2/health/ready')]);
    box.textContent = '';
    if (!meta.ok) { box.append(h('span', {class: 'bad'}, meta.error)); return; }
    box.append(h('span', null, `${meta.json.name} ${meta.json.version}`), ' ',
      h('span', {class: 'badge ' + (ready.ok ? 'ok' : 'bad'), title: ready.ok ? 'GET /v2/health/ready' : ready.error},
        ready.ok ? 'ready' : 'not ready'), API ? h('small', null, ' at ' + API) : '');
  }
  document.addEventListener('DOMContentLoaded', () => {
    $('.skip').addEventListener('click', ev => { ev.preventDefault(); $('#main').focus(); });
    if (API) for (const a of $$('[data-nav]')) a.href = location.search + '#' + a.dataset.nav;
    window.addEventListener('hashchange', route);
    route();
    server();
  });
})();
