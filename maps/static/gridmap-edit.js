/* GridMap edit mode: a planner redraws a draft on the served viewer.
 *
 * The page only selects and displays. Every rule (adjacency, band, pieces,
 * locks, staffing), every count and every check comes from the edit endpoints
 * (geo.editing over HTTP): POST /plans/{id}/draft, /edits, /undo, /redo,
 * /publish; GET /plans/{id}/grids, /buildings, /validate, /diff. Each request
 * names the version of the last answer (expected_version); a 409 is shown with
 * the current version and a reload button, never retried or overwritten.
 *
 * Pieces, as Districtr and DistrictBuilder build them: tools (select, lasso,
 * rectangle, brush) are small objects with activate()/deactivate(), one active
 * at a time; a stroke is one selection change; the grid table and the map
 * listen to the editor's events ("selection", "grids"), not to the tools. */
(function () {
  'use strict';
  var GM = (window.GridMap = window.GridMap || {});
  var PALETTE = ['#8dd3c7', '#fdb462', '#bebada', '#fb8072', '#80b1d3', '#b3de69',
    '#fccde5', '#bc80bd', '#ccebc5', '#ffed6f', '#d9d9d9', '#a6cee3'];
  var BAND = {
    in: { fill: '#2e7d32', label: '达标' },
    under: { fill: '#1565c0', label: '偏少' },
    over: { fill: '#c62828', label: '偏多' }
  };

  function esc(s) { return GM.esc(s); }

  function sameOrigin(url) {
    if (!url || !window.fetch || !/^https?:$/.test(location.protocol)) return null;
    try {
      var u = new URL(url, location.href);
      return u.origin === location.origin ? u : null;
    } catch (e) { return null; }
  }

  function hashColour(code) {
    var h = 0;
    for (var i = 0; i < code.length; i++) h = (h * 31 + code.charCodeAt(i)) | 0;
    return PALETTE[Math.abs(h) % PALETTE.length];
  }

  /* ray casting in lon/lat: is [x, y] inside ring [[x, y], …] */
  function inside(pt, ring) {
    var x = pt[0], y = pt[1], c = false;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) c = !c;
    }
    return c;
  }

  function segDist(p, a, b) {
    var dx = b.x - a.x, dy = b.y - a.y, l2 = dx * dx + dy * dy;
    var t = l2 ? Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2)) : 0;
    var x = a.x + t * dx - p.x, y = a.y + t * dy - p.y;
    return Math.sqrt(x * x + y * y);
  }

  /* ================================================================ tools */
  /* Each tool binds its events on activate() and unbinds them on deactivate(). */

  function SelectTool(ed) { this.ed = ed; this.name = 'select'; }
  SelectTool.prototype.activate = function () {};
  SelectTool.prototype.deactivate = function () {};

  /* lasso (free hand) or rectangle: drag a shape, its buildings are selected
   * (shift adds to the selection) */
  function ShapeTool(ed, kind) { this.ed = ed; this.name = kind; this.kind = kind; }
  ShapeTool.prototype.activate = function () {
    var self = this, map = this.ed.map;
    map.dragging.disable();
    L.DomUtil.addClass(map.getContainer(), 'gm-ed-drawing');
    this._down = function (e) {
      if (e.button !== 0 || !self.ed.onMap(e)) return;
      e.preventDefault();
      self.pts = [map.mouseEventToLatLng(e)];
      self.shift = e.shiftKey;
      self.line = L.polyline(self.pts, {
        renderer: self.ed.renderer, interactive: false, color: '#111', weight: 2, dashArray: '5 4'
      }).addTo(self.ed.drawn);
      L.DomEvent.on(document, 'mousemove', self._move);
      L.DomEvent.on(document, 'mouseup', self._up);
    };
    this._move = function (e) {
      var ll = map.mouseEventToLatLng(e);
      if (self.kind === 'rect') {
        var a = self.pts[0];
        self.pts = [a, ll];
        self.line.setLatLngs([a, L.latLng(a.lat, ll.lng), ll, L.latLng(ll.lat, a.lng), a]);
      } else {
        self.pts.push(ll);
        self.line.addLatLng(ll);
      }
    };
    this._up = function (e) {
      L.DomEvent.off(document, 'mousemove', self._move);
      L.DomEvent.off(document, 'mouseup', self._up);
      self._move(e);
      self.ed.drawn.removeLayer(self.line);
      var pts = self.pts, ids;
      if (self.kind === 'rect') {
        var b = L.latLngBounds(pts[0], pts[pts.length - 1]);
        ids = self.ed.unitIds(function (ll) { return b.contains(ll); });
      } else {
        var ring = pts.map(function (p) { return [p.lng, p.lat]; });
        ids = ring.length < 3 ? [] : self.ed.unitIds(function (ll) { return inside([ll.lng, ll.lat], ring); });
      }
      self.ed.select(ids, self.shift ? 'add' : 'replace', self.kind);
    };
    L.DomEvent.on(map.getContainer(), 'mousedown', this._down);
  };
  ShapeTool.prototype.deactivate = function () {
    var map = this.ed.map;
    L.DomEvent.off(map.getContainer(), 'mousedown', this._down);
    L.DomEvent.off(document, 'mousemove', this._move);
    L.DomEvent.off(document, 'mouseup', this._up);
    L.DomUtil.removeClass(map.getContainer(), 'gm-ed-drawing');
    map.dragging.enable();
  };

  /* brush: a drag paints the buildings it passes over into the selection (alt:
   * out of it); one stroke is one selection change */
  function BrushTool(ed) { this.ed = ed; this.name = 'brush'; this.radius = 14; }
  BrushTool.prototype.activate = function () {
    var self = this, map = this.ed.map;
    map.dragging.disable();
    L.DomUtil.addClass(map.getContainer(), 'gm-ed-drawing');
    this._down = function (e) {
      if (e.button !== 0 || !self.ed.onMap(e)) return;
      e.preventDefault();
      self.erase = e.altKey;
      self.painted = {};
      self.pts = self.ed.unitPoints();  // container points, fixed while painting
      self.last = map.mouseEventToContainerPoint(e);
      self.trail = L.polyline([map.containerPointToLatLng(self.last)], {
        renderer: self.ed.renderer, interactive: false, color: self.erase ? '#999' : '#ff9800',
        weight: 2 * self.radius, opacity: 0.35, lineCap: 'round', lineJoin: 'round'
      }).addTo(self.ed.drawn);
      self._paint(self.last, self.last);
      L.DomEvent.on(document, 'mousemove', self._move);
      L.DomEvent.on(document, 'mouseup', self._up);
    };
    this._move = function (e) {
      var p = map.mouseEventToContainerPoint(e);
      self._paint(self.last, p);
      self.last = p;
      self.trail.addLatLng(map.containerPointToLatLng(p));
    };
    this._up = function () {
      L.DomEvent.off(document, 'mousemove', self._move);
      L.DomEvent.off(document, 'mouseup', self._up);
      self.ed.drawn.removeLayer(self.trail);
      self.ed.select(Object.keys(self.painted), self.erase ? 'remove' : 'add', 'brush');
    };
    L.DomEvent.on(map.getContainer(), 'mousedown', this._down);
  };
  BrushTool.prototype._paint = function (a, b) {
    var r = this.radius, painted = this.painted;
    this.pts.forEach(function (q) {
      if (!painted[q.id] && segDist(q.p, a, b) <= r) {
        painted[q.id] = 1;
      }
    });
    this.ed.preview(Object.keys(painted), this.erase);
  };
  BrushTool.prototype.deactivate = ShapeTool.prototype.deactivate;

  /* line: each click on the map adds a point of a line (a double click ends
   * it, Esc clears it); the target grid is then split along it (沿线拆分) */
  function LineTool(ed) { this.ed = ed; this.name = 'line'; }
  LineTool.prototype.activate = function () {
    var ed = this.ed;
    L.DomUtil.addClass(ed.map.getContainer(), 'gm-ed-drawing');
    this.clicks = GM.pointClicks(ed.map, {
      onMap: function (e) { return ed.onMap(e); },
      last: function () { return ed.linePts[ed.linePts.length - 1] || null; },
      onPoint: function (ll) { ed.linePts.push(ll); ed.drawLine(); }
    });
    this.clicks.on();
  };
  LineTool.prototype.deactivate = function () {
    this.clicks.off();
    L.DomUtil.removeClass(this.ed.map.getContainer(), 'gm-ed-drawing');
  };

  /* =============================================================== editor */
  function Editor(map, st, opts) {
    this.map = map;
    this.st = st;
    this.opts = opts;
    this.base = sameOrigin(opts.plansUrl);
    this.key = null;
    this.draft = null;      // {id, version, status, band, parent_id, area_code}
    this.grids = {};        // code -> properties (the last answer's state)
    this.gridLayers = {};   // code -> polygon layer
    this.units = {};        // 'b:id' | 'h:id' -> {props, ll, marker}
    this.sel = {};          // unit id -> 1
    this.touched = [];      // grid codes changed by this session's edits, latest first
    this.target = null;
    this.busy = false;
    this.loaded = null;     // bounds the building layer covers
    this.bseq = 0;
    this.breq = 0;
    this.handlers = {};
    this.tools = {
      select: new SelectTool(this),
      lasso: new ShapeTool(this, 'lasso'),
      rect: new ShapeTool(this, 'rect'),
      brush: new BrushTool(this),
      line: new LineTool(this)
    };
    this.linePts = [];      // the line a split follows (lat/lng), drawn with the line tool
    this.staff = [];        // grid workers and leaders of the draft's area
    this.tool = null;
  }

  Editor.prototype.on = function (ev, fn) { (this.handlers[ev] = this.handlers[ev] || []).push(fn); };
  Editor.prototype.emit = function (ev, arg) { (this.handlers[ev] || []).forEach(function (fn) { fn(arg); }); };

  Editor.prototype.attr = function (name, value) {
    var box = this.map.getContainer();
    if (value == null) box.removeAttribute('data-gm-edit-' + name);
    else box.setAttribute('data-gm-edit-' + name, String(value));
  };

  Editor.prototype.onMap = function (e) {
    var pane = this.map.getPane('mapPane');
    return pane && pane.contains(e.target);
  };

  /* ----------------------------------------------------------- requests */
  Editor.prototype.api = function (method, path, body) {
    var self = this, u = new URL(this.base.href.replace(/\/$/, '') + path);
    var headers = { Accept: 'application/json', 'X-API-Key': this.key };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(u.href, {
      method: method, headers: headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; },
        function () { return { ok: r.ok, status: r.status, body: null }; });
    }, function () {
      return { ok: false, status: 0, body: null };
    }).then(function (x) {
      if (x.status === 401 || x.status === 403) self.say(self.problem(x), 'err');
      return x;
    });
  };

  Editor.prototype.problem = function (x) {
    var b = x.body;
    var d = b && (b.detail || b.title);
    if (Array.isArray(d)) d = d.map(function (e) { return e.msg || JSON.stringify(e); }).join('; ');
    return d ? String(d) : (x.status ? '请求失败（' + x.status + '）' : '无法连接服务器');
  };

  /* One edit, undo or redo: names the version of the last answer; the answer
   * (geo.editing.EditResult) updates the grids, the table and the buildings. */
  Editor.prototype.send = function (path, body, what) {
    var self = this;
    if (!this.draft || this.busy) return Promise.resolve(null);
    if (this.draft.status !== 'draft') { this.say('该方案已发布，不能再编辑', 'err'); return Promise.resolve(null); }
    var seen = this.draft.version;
    body.expected_version = seen;
    this.setBusy(true, what);
    return this.api('POST', '/' + this.draft.id + path, body).then(function (x) {
      self.setBusy(false);
      if (x.status === 409) {
        self.conflict(seen, x.body && x.body.current_version);
        return null;
      }
      if (!x.ok) {
        self.say(what + '未完成：' + self.problem(x), 'err');
        return null;
      }
      self.applyAnswer(x.body);
      var probs = x.body.problems || [];
      self.say(what + '完成：' + esc(x.body.summary) + '（版本 ' + x.body.version + '）' +
        (probs.length ? '<ul>' + probs.map(function (p) { return '<li>' + esc(p) + '</li>'; }).join('') + '</ul>' : ''),
        probs.length ? 'warn' : 'ok', true);
      self.reloadUnits();
      return x.body;
    });
  };

  Editor.prototype.applyAnswer = function (body) {
    var self = this;
    this.draft.version = body.version;
    this.attr('version', body.version);
    this.el.state.textContent = '草稿 #' + this.draft.id + ' · 版本 ' + body.version;
    var codes = [];
    body.grids.forEach(function (g) {
      codes.push(g.code);
      if (g.status === 'retired') {
        self.removeGrid(g.code);
        return;
      }
      var prev = self.grids[g.code] || {};
      self.setGrid({
        code: g.code,
        area_code: prev.area_code,
        households: g.households,
        in_band: g.in_band,
        cause: g.cause,
        locked: g.locked,
        worker_id: g.worker_id,
        worker_name: g.worker_id === prev.worker_id ? prev.worker_name : self.staffName(g.worker_id),
        label: null
      }, g.geometry);
    });
    this.touch(codes);
    if (this.diffCodes && Object.keys(this.diffCodes).length) { this.diffCodes = {}; this.restyleGrids(); }
    if (this.target && !this.grids[this.target]) this.target = null;
    this.clearSelection();
    this.emit('grids');
  };

  Editor.prototype.staffName = function (id) {
    var p = this.staff.filter(function (q) { return q.id === id; })[0];
    return p ? p.name : null;
  };

  Editor.prototype.touch = function (codes) {
    var t = this.touched.filter(function (c) { return codes.indexOf(c) < 0; });
    this.touched = codes.slice().sort().concat(t).slice(0, 40);
  };

  Editor.prototype.conflict = function (seen, current) {
    var box = this.el.conflict;
    box.innerHTML = '草稿已被他人修改：当前版本 <b class="gm-ed-current">' + esc(current) +
      '</b>，您看到的是版本 ' + esc(seen) + '。本次操作未写入任何内容。' +
      ' <button type="button" data-act="reload">重新加载草稿</button>';
    box.hidden = false;
    this.stale = true;
    this.attr('conflict', current);
    this.refreshButtons();
  };

  Editor.prototype.setBusy = function (on, what) {
    this.busy = on;
    this.attr('busy', on ? '1' : null);
    if (on) this.say((what || '') + '处理中…', 'info');
    this.refreshButtons();
  };

  Editor.prototype.say = function (html, kind, trusted) {
    var m = this.el && this.el.msg;
    if (!m) return;
    m.className = 'gm-ed-msg gm-ed-' + (kind || 'info');
    m.innerHTML = trusted ? html : esc(html);
  };

  /* ------------------------------------------------------------- enable */
  Editor.prototype.enable = function (key, area) {
    if (!this.base) return;
    this.key = key;
    this.keyArea = area || null; // a key limited to an area drafts its part
    this.part = null;
    if (!this.ctl) this.buildPanel();
    this.attr('on', '1');
    this.loadDrafts();
  };

  Editor.prototype.disable = function () {
    this.key = null;
    this.leave();
    if (this.ctl) { this.ctl.remove(); this.ctl = null; }
    this.attr('on', null);
  };

  Editor.prototype.buildPanel = function () {
    var self = this, map = this.map;
    var ctl = this.ctl = L.control({ position: 'topright' });
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gm-edit leaflet-bar');
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      div.innerHTML =
        '<h4>编辑网格 <span class="gm-ed-state"></span></h4>' +
        '<div class="gm-ed-row"><select name="draft" aria-label="草稿"></select>' +
        ' <button type="button" data-act="open">打开</button>' +
        ' <button type="button" data-act="new">从已发布方案新建草稿</button></div>' +
        '<div class="gm-ed-body" hidden>' +
        '<div class="gm-ed-row gm-ed-tools">' +
        ['select:点选', 'lasso:套索', 'rect:框选', 'brush:画笔', 'line:画线'].map(function (t) {
          var p = t.split(':');
          return '<label><input type="radio" name="gm-ed-tool" value="' + p[0] + '"' +
            (p[0] === 'select' ? ' checked' : '') + '>' + p[1] + '</label>';
        }).join(' ') + '</div>' +
        '<div class="gm-ed-hint gm-ed-zoom"></div>' +
        '<div class="gm-ed-hint">点选：单击楼栋（Shift 加选），单击网格设为目标；套索/框选：拖动圈选（Shift 加选）；画笔：拖动涂选（Alt 擦除）；画线：逐点单击画出拆分线（Esc 清除）。</div>' +
        '<div class="gm-ed-row gm-ed-sel">已选 <b class="gm-ed-nsel">0</b> 处（<b class="gm-ed-nhh">0</b> 户）' +
        ' <button type="button" data-act="clear">清除</button></div>' +
        '<div class="gm-ed-row">目标网格 <select name="target" aria-label="目标网格"></select>' +
        ' <button type="button" data-act="move">移入</button></div>' +
        '<div class="gm-ed-conflict" hidden></div>' +
        '<div class="gm-ed-msg"></div>' +
        '<table class="gm-ed-table"><thead><tr><th>网格</th><th>户数</th><th>状态</th><th>原因</th></tr></thead>' +
        '<tbody></tbody></table>' +
        '<div class="gm-ed-row">目标网格：<button type="button" data-act="lock">锁定</button>' +
        '<button type="button" data-act="unlock">解锁</button>' +
        '<button type="button" data-act="split">拆分为两格</button>' +
        '<button type="button" data-act="splitline" title="先用“画线”工具画出穿过目标网格的线">沿线拆分</button></div>' +
        '<div class="gm-ed-row">网格员 <select name="worker" aria-label="网格员"></select>' +
        ' <button type="button" data-act="assign">指派给目标网格</button></div>' +
        '<div class="gm-ed-row">与 <select name="merge" aria-label="合并网格"></select>' +
        ' <button type="button" data-act="merge">合并</button></div>' +
        '<div class="gm-ed-row"><label title="移入、拆分、合并后网格户数可超出范围（记为原因）">' +
        '<input type="checkbox" name="allow">允许超出户数范围</label></div>' +
        '<div class="gm-ed-row"><button type="button" data-act="undo">撤销</button>' +
        '<button type="button" data-act="redo">重做</button>' +
        '<button type="button" data-act="rebalance">平衡其余网格</button></div>' +
        '<div class="gm-ed-row"><button type="button" data-act="validate">校验</button>' +
        '<button type="button" data-act="diff">对比已发布</button>' +
        '<button type="button" data-act="publish">发布</button>' +
        '<button type="button" data-act="leave">退出编辑</button></div>' +
        '<div class="gm-ed-out"></div>' +
        '</div>';
      return div;
    };
    ctl.addTo(map);
    this.fitPanel();
    var div = ctl.getContainer(), q = function (s) { return div.querySelector(s); };
    this.el = {
      div: div, state: q('.gm-ed-state'), drafts: q('select[name=draft]'), body: q('.gm-ed-body'),
      target: q('select[name=target]'), merge: q('select[name=merge]'), nsel: q('.gm-ed-nsel'),
      nhh: q('.gm-ed-nhh'), msg: q('.gm-ed-msg'), conflict: q('.gm-ed-conflict'),
      allow: q('input[name=allow]'), zoom: q('.gm-ed-zoom'), worker: q('select[name=worker]'),
      rows: q('.gm-ed-table tbody'), out: q('.gm-ed-out')
    };
    div.addEventListener('click', function (e) {
      var b = e.target.closest && e.target.closest('button[data-act]');
      if (b && !b.disabled) self.act(b.getAttribute('data-act'));
    });
    div.addEventListener('change', function (e) {
      var t = e.target;
      if (t.name === 'gm-ed-tool' && t.checked) self.useTool(t.value);
      if (t.name === 'target') self.setTarget(t.value || null);
      if (t.name === 'merge' || t.name === 'worker') self.refreshButtons();
    });
    this.on('selection', function () { self.drawSelection(); self.renderTable(); });
    this.on('grids', function () { self.renderTargets(); self.renderTable(); });
    this.refreshButtons();
  };

  /* the panel ends above the legend (bottom right), however tall the legend
   * grows (its messages) and however the window is resized; the panel scrolls */
  Editor.prototype.fitPanel = function () {
    var self = this, div = this.ctl && this.ctl.getContainer();
    var legend = this.map.getContainer().querySelector('.gm-legend');
    if (!div) return;
    var fit = function () {
      if (!self.ctl) return;
      var top = div.getBoundingClientRect().top;
      var bottom = legend ? legend.getBoundingClientRect().top : self.map.getContainer().getBoundingClientRect().bottom;
      div.style.maxHeight = Math.max(160, bottom - top - 10) + 'px';
    };
    fit();
    if (!this.fitting) {
      this.fitting = true;
      window.addEventListener('resize', fit);
      if (legend && window.ResizeObserver) new ResizeObserver(fit).observe(legend);
    }
  };

  Editor.prototype.refreshButtons = function () {
    if (!this.el) return;
    // after a 409 only "reload" is offered: nothing is sent with a stale version
    var open = !!(this.draft && this.draft.status === 'draft') && !this.stale, busy = this.busy;
    var nsel = Object.keys(this.sel).length, self = this;
    Array.prototype.forEach.call(this.el.div.querySelectorAll('button[data-act]'), function (b) {
      var a = b.getAttribute('data-act'), ok = !busy;
      if (a === 'move') ok = ok && open && nsel > 0 && !!self.target;
      else if (a === 'lock' || a === 'unlock' || a === 'split') ok = ok && open && !!self.target;
      else if (a === 'merge') ok = ok && open && !!self.target && !!self.el.merge.value;
      else if (a === 'splitline') ok = ok && open && !!self.target && self.linePts.length >= 2;
      else if (a === 'assign') ok = ok && open && !!self.target && !!self.el.worker.value;
      else if (['undo', 'redo', 'rebalance', 'publish'].indexOf(a) >= 0) ok = ok && open;
      else if (a === 'validate' || a === 'diff' || a === 'leave') ok = ok && !!self.draft;
      else if (a === 'clear') ok = nsel > 0;
      b.disabled = !ok;
    });
  };

  Editor.prototype.act = function (a) {
    var self = this, d = this.draft;
    if (a === 'open') return this.open(+this.el.drafts.value);
    if (a === 'new') return this.startDraft();
    if (a === 'clear') return this.clearSelection();
    if (a === 'leave') return this.leave();
    if (a === 'reload') return this.open(d.id);
    if (a === 'move') return this.move();
    var allow = this.el.allow.checked ? { allow_out_of_band: true } : {};
    if (a === 'lock' || a === 'unlock') {
      return this.send('/edits', { op: a, grids: [this.target] }, a === 'lock' ? '锁定' : '解锁');
    }
    if (a === 'split') {
      return this.send('/edits', L.extend({ op: 'split', grid: this.target, parts: 2 }, allow), '拆分');
    }
    if (a === 'merge') {
      return this.send('/edits', L.extend({ op: 'merge', grids: [this.target, this.el.merge.value] }, allow), '合并');
    }
    if (a === 'splitline') {
      var line = this.linePts.map(function (p) { return [p.lng, p.lat]; });
      return this.send('/edits', L.extend({ op: 'split', grid: this.target, line: line }, allow), '沿线拆分')
        .then(function (b) { if (b) self.clearLine(); return b; });
    }
    if (a === 'assign') {
      return this.send('/edits', { op: 'assign_worker', grid: this.target, person_id: this.el.worker.value }, '指派网格员')
        .then(function (b) { if (b) self.loadStaff(); return b; });
    }
    if (a === 'rebalance') return this.send('/edits', { op: 'rebalance' }, '平衡');
    if (a === 'undo') return this.send('/undo', {}, '撤销');
    if (a === 'redo') return this.send('/redo', {}, '重做');
    if (a === 'validate') return this.validate();
    if (a === 'diff') return this.diff();
    if (a === 'publish') {
      if (!window.confirm('发布草稿 #' + d.id + '？发布后它将取代当前生效的方案。')) return null;
      return this.publish();
    }
    return null;
  };

  /* ------------------------------------------------------------- drafts */
  Editor.prototype.loadDrafts = function () {
    var self = this;
    var planId = this.opts.planId;
    // a key limited to an area reads the map's plan from the published list (a
    // plan covering more than its area is not its to open): when that plan is
    // of a wider area (the county's, for a township's key), it drafts and lists
    // its own part of it
    var which = this.keyArea ? this.api('GET', '?status=published').then(function (x) {
      var p = (x.ok ? x.body : []).filter(function (q) { return q.id === planId; })[0];
      return p ? { ok: true, status: 200, body: p } : { ok: false, status: 404, body: null };
    }) : this.api('GET', '/' + planId);
    return which.then(function (x) {
      if (!x.ok) return null;
      self.part = self.keyArea && x.body.area_code !== self.keyArea ? self.keyArea : null;
      self.attr('part', self.part);
      self.areaCode = self.part || x.body.area_code;
      return self.api('GET', '?status=draft&area=' + encodeURIComponent(self.areaCode));
    }).then(function (x) {
      var sel = self.el.drafts;
      var rows = (x && x.ok ? x.body : []);
      sel.innerHTML = rows.length ? rows.map(function (p) {
        return '<option value="' + p.id + '">草稿 #' + p.id + (p.name ? ' ' + esc(p.name) : '') +
          (p.parent_id ? '（源自 #' + p.parent_id + '）' : '') + '</option>';
      }).join('') : '<option value="">（尚无草稿）</option>';
      if (self.draft) sel.value = String(self.draft.id);
      self.el.div.querySelector('button[data-act=open]').disabled = !rows.length;
      self.attr('drafts', rows.length);
    });
  };

  Editor.prototype.startDraft = function () {
    var self = this;
    this.setBusy(true, '新建草稿');
    var part = this.part ? '?area=' + encodeURIComponent(this.part) : '';
    return this.api('POST', '/' + this.opts.planId + '/draft' + part).then(function (x) {
      self.setBusy(false);
      if (!x.ok) { self.say('新建草稿未完成：' + self.problem(x), 'err'); return null; }
      self.say('已从方案 #' + x.body.parent_id + ' 新建草稿 #' + x.body.id, 'ok');
      return self.open(x.body.id).then(function () { return self.loadDrafts(); });
    });
  };

  /* open (or reload) a draft: its grids and version from GET /plans/{id}/grids */
  Editor.prototype.open = function (id) {
    var self = this;
    if (!id) return Promise.resolve(null);
    this.setBusy(true, '加载草稿');
    return this.api('GET', '/' + id + '/grids').then(function (x) {
      self.setBusy(false);
      if (!x.ok) { self.say('加载草稿未完成：' + self.problem(x), 'err'); return null; }
      var b = x.body;
      self.enter();
      self.draft = { id: b.plan_id, version: b.version, status: b.status, band: b.band, parent_id: b.parent_id };
      self.grids = {};
      self.gridLayer.clearLayers();
      self.gridLayers = {};
      self.labels.clearLayers();
      b.features.forEach(function (f) { self.setGrid(f.properties, f.geometry); });
      if (self.target && !self.grids[self.target]) self.target = null;
      self.el.conflict.hidden = true;
      self.stale = false;
      self.diffCodes = {};
      self.attr('conflict', null);
      self.attr('draft', b.plan_id);
      self.attr('version', b.version);
      self.attr('status', b.status);
      self.el.state.textContent = '草稿 #' + b.plan_id + ' · 版本 ' + b.version +
        (b.status !== 'draft' ? ' · ' + b.status : '');
      self.el.body.hidden = false;
      self.clearSelection();
      self.emit('grids');
      self.say('已打开草稿 #' + b.plan_id + '（版本 ' + b.version + '，' + b.features.length + ' 个网格；范围 ' +
        b.band.min + '–' + b.band.max + ' 户）', 'ok');
      self.clearLine();
      self.loadStaff();
      return self.reloadUnits();
    });
  };

  /* the edit layers replace the page's own while editing */
  Editor.prototype.enter = function () {
    var self = this, map = this.map;
    if (this.active) return;
    this.active = true;
    if (!map.getPane('gm-edit')) {
      map.createPane('gm-edit').style.zIndex = 450;
      var lp = map.createPane('gm-edit-labels');
      lp.style.zIndex = 460;
      lp.style.pointerEvents = 'none';
      this.renderer = L.canvas({ pane: 'gm-edit', padding: 0.3, tolerance: 3 });
      this.gridLayer = L.featureGroup();
      this.unitLayer = L.featureGroup();
      this.labels = L.featureGroup();
      this.drawn = L.featureGroup();
      map.on('moveend', function () { if (self.active) self.viewChanged(); });
      L.DomEvent.on(document, 'keydown', function (e) {
        if (self.active && e.key === 'Escape') { self.clearSelection(); self.clearLine(); }
      });
    }
    this.hidden = [];
    var own = Object.keys(this.st.groups).map(function (k) { return self.st.groups[k]; });
    if (this.st.events) own.push(this.st.events.group);
    own.forEach(function (g) {
      if (map.hasLayer(g)) { map.removeLayer(g); self.hidden.push(g); }
    });
    [this.gridLayer, this.unitLayer, this.labels, this.drawn].forEach(function (l) { l.addTo(map); });
    this.boxZoom = map.boxZoom.enabled();
    map.boxZoom.disable();
    this.useTool(this.tool ? this.tool.name : 'select');
    this.attr('active', '1');
  };

  Editor.prototype.leave = function () {
    var self = this, map = this.map;
    if (!this.active) return;
    if (this.tool) { this.tool.deactivate(); }
    [this.gridLayer, this.unitLayer, this.labels, this.drawn].forEach(function (l) { map.removeLayer(l); });
    (this.hidden || []).forEach(function (g) { g.addTo(map); });
    if (this.boxZoom) map.boxZoom.enable();
    this.active = false;
    this.draft = null;
    this.units = {};
    this.sel = {};
    this.loaded = null;
    if (this.el) {
      this.el.body.hidden = true;
      this.el.state.textContent = '';
    }
    ['active', 'draft', 'version', 'status', 'selected', 'units', 'useq'].forEach(function (a) { self.attr(a, null); });
  };

  Editor.prototype.drawLine = function () {
    if (this.lineLayer) this.drawn.removeLayer(this.lineLayer);
    this.lineLayer = this.linePts.length ? L.polyline(this.linePts, {
      renderer: this.renderer, interactive: false, color: '#d7301f', weight: 3, dashArray: '7 5'
    }).addTo(this.drawn) : null;
    this.attr('line', this.linePts.length || null);
    this.refreshButtons();
  };

  Editor.prototype.clearLine = function () {
    this.linePts = [];
    this.drawLine();
  };

  /* the people an assign_worker may name: GET /plans/{id}/staff */
  Editor.prototype.loadStaff = function () {
    var self = this, d = this.draft, sel = this.el.worker;
    if (!d) return Promise.resolve(null);
    return this.api('GET', '/' + d.id + '/staff').then(function (x) {
      if (!x.ok || self.draft !== d) return null;
      var keep = sel.value;
      self.staff = x.body.people;
      sel.innerHTML = '<option value="">（选择网格员）</option>' + self.staff.map(function (p) {
        return '<option value="' + esc(p.id) + '">' + esc(p.name) + ' · ' + esc(p.area_name) +
          (p.grids.length ? '（现任 ' + esc(p.grids.join('、')) + '）' : '（未分配）') + '</option>';
      }).join('');
      sel.value = keep;
      self.attr('staff', self.staff.length);
      self.refreshButtons();
      return self.staff;
    });
  };

  Editor.prototype.useTool = function (name) {
    if (this.tool) this.tool.deactivate();
    this.tool = this.tools[name] || this.tools.select;
    if (this.active) this.tool.activate();
    this.attr('tool', this.tool.name);
  };

  /* ------------------------------------------------------------- grids */
  Editor.prototype.bandOf = function (n) {
    var b = this.draft.band;
    return n < b.min ? 'under' : n > b.max ? 'over' : 'in';
  };

  Editor.prototype.gridStyle = function (code) {
    var g = this.grids[code], band = BAND[this.bandOf(g.households)];
    var s = {
      color: '#263238', weight: 2, opacity: 0.9, dashArray: null,
      // in band: the grid's own colour; out of band: blue (under) or red (over)
      fillColor: g.in_band ? this.unitColour(code) : band.fill, fillOpacity: g.in_band ? 0.22 : 0.35
    };
    if (this.diffCodes && this.diffCodes[code]) { s.color = '#7b1fa2'; s.weight = 3.5; }
    if (g.locked) { s.dashArray = '8 5'; s.weight = 3.5; s.color = '#212121'; s.fillOpacity += 0.1; }
    if (code === this.target) { s.color = '#ff6f00'; s.weight = 5; s.dashArray = g.locked ? '8 5' : null; }
    return s;
  };

  Editor.prototype.setGrid = function (props, geometry) {
    var self = this, code = props.code, old = this.gridLayers[code], prev = this.grids[code];
    if (prev && !props.area_code) props.area_code = prev.area_code;
    if (prev && prev._label && prev !== props) props._label = prev._label;  // replaced by drawLabel
    this.grids[code] = props;
    if (geometry) {
      if (old) this.gridLayer.removeLayer(old);
      var lyr = L.geoJSON(geometry, { renderer: this.renderer, style: function () { return self.gridStyle(code); } });
      lyr.on('click', function (e) {
        if (self.tool && self.tool.name === 'select') {
          L.DomEvent.stopPropagation(e);
          self.setTarget(code);
        }
      });
      lyr.bindTooltip(function () { return self.gridTip(code); }, { sticky: true });
      lyr.addTo(this.gridLayer);
      lyr.bringToBack();  // buildings stay on top (one canvas: the last drawn is hit)
      this.gridLayers[code] = lyr;
      if (!props.label) {
        var c = lyr.getBounds().getCenter();
        props.label = [c.lng, c.lat];
      }
    } else if (old) {
      if (!props.label && prev) props.label = prev.label;
      old.setStyle(this.gridStyle(code));
    }
    this.drawLabel(code);
  };

  Editor.prototype.restyleGrids = function () {
    for (var c in this.gridLayers) this.gridLayers[c].setStyle(this.gridStyle(c));
  };

  Editor.prototype.drawLabel = function (code) {
    var g = this.grids[code];
    if (g._label) this.labels.removeLayer(g._label);
    if (!g.label) return;
    var ll = L.latLng(g.label[1], g.label[0]);
    var band = this.bandOf(g.households);
    g._label = L.marker(ll, {
      pane: 'gm-edit-labels', interactive: false, keyboard: false,
      icon: L.divIcon({
        className: 'gm-ed-label gm-band-' + band,
        html: '<span>' + esc(code.slice(-4)) + ' · ' + g.households + (g.locked ? ' 🔒' : '') + '</span>',
        iconSize: null
      })
    }).addTo(this.labels);
  };

  Editor.prototype.removeGrid = function (code) {
    var g = this.grids[code];
    if (g && g._label) this.labels.removeLayer(g._label);
    if (this.gridLayers[code]) this.gridLayer.removeLayer(this.gridLayers[code]);
    delete this.gridLayers[code];
    delete this.grids[code];
  };

  Editor.prototype.gridTip = function (code) {
    var g = this.grids[code];
    if (!g) return '';
    return '网格 ' + esc(code) + '：' + g.households + ' 户（' + BAND[this.bandOf(g.households)].label + '）' +
      (g.locked ? ' · 已锁定' : '') + (g.worker_name ? '<br>网格员 ' + esc(g.worker_name) : '') +
      (g.cause ? '<br>' + esc(g.cause) : '');
  };

  Editor.prototype.setTarget = function (code) {
    var prev = this.target;
    this.target = code && this.grids[code] ? code : null;
    [prev, this.target].forEach(function (c) {
      if (c && this.gridLayers[c]) this.gridLayers[c].setStyle(this.gridStyle(c));
    }, this);
    this.el.target.value = this.target || '';
    this.attr('target', this.target);
    this.loadNeighbours();
    this.renderTable();
    this.refreshButtons();
  };

  Editor.prototype.loadNeighbours = function () {
    var self = this, code = this.target, sel = this.el.merge;
    sel.innerHTML = '';
    if (!code || !this.draft) { this.refreshButtons(); return; }
    this.api('GET', '/' + this.draft.id + '/grids/' + encodeURIComponent(code) + '/neighbours').then(function (x) {
      if (self.target !== code || !x.ok) return;
      sel.innerHTML = x.body.map(function (c) {
        var g = self.grids[c];
        return '<option value="' + esc(c) + '">' + esc(c) + (g ? '（' + g.households + ' 户' + (g.locked ? '，锁定' : '') + '）' : '') + '</option>';
      }).join('');
      self.refreshButtons();
    });
  };

  Editor.prototype.renderTargets = function () {
    var self = this, codes = Object.keys(this.grids).sort();
    this.el.target.innerHTML = '<option value="">（单击地图上的网格或在此选择）</option>' + codes.map(function (c) {
      var g = self.grids[c];
      return '<option value="' + esc(c) + '">' + esc(c) + '（' + g.households + ' 户' + (g.locked ? '，锁定' : '') + '）</option>';
    }).join('');
    this.el.target.value = this.target || '';
    this.refreshButtons();
  };

  /* the live table: touched grids (this session's edits), the selection's grids
   * and the target, with their counts coloured by band and causes */
  Editor.prototype.renderTable = function () {
    var self = this, rows = [], seen = {};
    var from = this.selectionByGrid();
    function add(code, note) {
      if (seen[code] || !self.grids[code]) return;
      seen[code] = 1;
      rows.push([code, note]);
    }
    if (this.target) add(this.target, '目标');
    Object.keys(from).sort().forEach(function (c) { add(c, '选中 ' + from[c] + ' 户'); });
    this.touched.forEach(function (c) { add(c, '已改'); });
    this.el.rows.innerHTML = rows.map(function (r) {
      var g = self.grids[r[0]], band = self.bandOf(g.households);
      var cause = g.in_band ? '' : String(g.cause || '未记录原因');
      return '<tr class="gm-band-' + band + '" data-code="' + esc(r[0]) + '">' +
        '<td title="' + esc(r[0]) + '">' + esc(r[0]) + '<div class="gm-ed-note">' + esc(r[1]) +
        (g.locked ? ' · 锁定' : '') + '</div></td>' +
        '<td class="gm-ed-n">' + g.households + '</td>' +
        '<td class="gm-ed-band">' + BAND[band].label + '</td>' +
        '<td class="gm-ed-cause" title="' + esc(cause) + '">' + esc(cause.length > 48 ? cause.slice(0, 46) + '…' : cause) + '</td></tr>';
    }).join('');
    this.attr('rows', rows.length);
  };

  /* ------------------------------------------------------------- units */
  Editor.prototype.viewChanged = function () {
    if (!this.draft) return;
    var z = this.map.getZoom();
    // fine units only when zoomed in; the selection is kept meanwhile
    var show = z >= this.opts.editZoom;
    if (show !== this.map.hasLayer(this.unitLayer)) {
      if (show) this.unitLayer.addTo(this.map); else this.map.removeLayer(this.unitLayer);
    }
    this.unitsShown = show;
    this.el.zoom.innerHTML = show ? (this.truncated ? '此范围楼栋过多，仅显示部分；请放大' : '') :
      '放大到 ' + this.opts.editZoom + ' 级以上可选择楼栋';
    if (!show) return;
    if (!this.loaded || !this.loaded.contains(this.map.getBounds())) this.reloadUnits();
  };

  /* the buildings in view (padded) from GET /plans/{id}/buildings */
  Editor.prototype.reloadUnits = function () {
    var self = this;
    if (!this.draft) return Promise.resolve(null);
    if (this.map.getZoom() < this.opts.editZoom) {
      this.loaded = null;  // reloaded when zoomed in again
      this.viewChanged();
      return Promise.resolve(null);
    }
    var b = this.map.getBounds().pad(0.5), n = ++this.breq, id = this.draft.id;
    var box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(',');
    return this.api('GET', '/' + id + '/buildings?bbox=' + box).then(function (x) {
      if (n !== self.breq || !self.draft || self.draft.id !== id) return null;
      if (!x.ok) { self.say('楼栋加载失败：' + self.problem(x), 'err'); return null; }
      self.loaded = b;
      self.drawUnits(x.body);
      return x.body;
    });
  };

  /* the page's colour of a grid (neighbours differ), else one from its code */
  Editor.prototype.unitColour = function (code) {
    if (!this.colourOf) {
      var c = this.colourOf = {};
      (this.st.cfg.grids || []).forEach(function (g) { c[g[0]] = g[1]; });
    }
    return this.colourOf[code] || hashColour(code || '');
  };

  Editor.prototype.drawUnits = function (body) {
    var self = this, keep = this.sel;
    this.unitLayer.clearLayers();
    this.units = {};
    this.sel = {};
    var colours = {};
    body.features.forEach(function (f) {
      var p = f.properties, c = f.geometry.coordinates, uid = f.id;
      var ll = L.latLng(c[1], c[0]);
      var col = colours[p.grid_code] || (colours[p.grid_code] = self.unitColour(p.grid_code));
      var n = p.households;
      var mk = L.circleMarker(ll, {
        renderer: self.renderer, radius: n > 1 ? Math.min(12, 5 + Math.sqrt(n) / 2) : 5,
        weight: 1.5, color: '#333', fillColor: col, fillOpacity: 0.95
      });
      mk._gmUid = uid;
      mk.on('click', function (e) {
        if (!self.tool || self.tool.name !== 'select') return;
        L.DomEvent.stopPropagation(e);
        var shift = e.originalEvent && e.originalEvent.shiftKey;
        self.select([uid], shift ? 'toggle' : 'replace', 'click');
      });
      mk.bindTooltip(function () {
        return esc(p.address) + (n > 1 ? ' · ' + n + ' 户' : '') + '<br>网格 ' + esc(p.grid_code) +
          (p.grids.length > 1 ? '（跨 ' + p.grids.length + ' 格）' : '') + (p.locked ? ' · 锁定' : '');
      }, { direction: 'top' });
      mk.addTo(self.unitLayer);
      self.units[uid] = { props: p, ll: ll, marker: mk, colour: col };
      if (keep[uid]) self.sel[uid] = 1;
    });
    this.bseq += 1;
    this.attr('units', body.features.length);
    this.attr('useq', this.bseq);
    this.truncated = body.truncated;
    this.viewChanged();
    this.emit('selection');
  };

  Editor.prototype.unitIds = function (test) {
    var out = [];
    if (!this.unitsShown) return out;
    for (var uid in this.units) if (test(this.units[uid].ll)) out.push(uid);
    return out;
  };

  Editor.prototype.unitPoints = function () {
    var map = this.map, out = [];
    if (!this.unitsShown) return out;
    for (var uid in this.units) out.push({ id: uid, p: map.latLngToContainerPoint(this.units[uid].ll) });
    return out;
  };

  /* ------------------------------------------------------------ selection */
  /* how: replace | add | remove | toggle. Buildings of a locked grid cannot be
   * taken from it (DistrictBuilder's lock) and are left out. */
  Editor.prototype.select = function (ids, how, by) {
    var self = this, skipped = 0, next = how === 'replace' ? {} : L.extend({}, this.sel);
    ids.forEach(function (uid) {
      var u = self.units[uid];
      if (!u) return;
      var locked = u.props.grids.some(function (c) { return self.grids[c] && self.grids[c].locked; });
      if (how === 'remove' || (how === 'toggle' && next[uid])) { delete next[uid]; return; }
      if (locked) { skipped += 1; return; }
      next[uid] = 1;
    });
    this.sel = next;
    this.clearPreview();
    if (skipped) this.say(skipped + ' 处位于锁定网格，不能移出，未选中', 'warn');
    this.attr('last-select', by);
    this.emit('selection');
  };

  Editor.prototype.clearSelection = function () {
    this.sel = {};
    this.clearPreview();
    this.emit('selection');
  };

  Editor.prototype.preview = function (ids, erase) {
    var self = this;
    this.clearPreview();
    this.previewed = ids;
    ids.forEach(function (uid) {
      var u = self.units[uid];
      if (u) u.marker.setStyle({ color: erase ? '#999' : '#ff6f00', weight: 3 });
    });
  };

  Editor.prototype.clearPreview = function () {
    var self = this;
    (this.previewed || []).forEach(function (uid) {
      var u = self.units[uid];
      if (u) u.marker.setStyle(self.unitStyle(uid));
    });
    this.previewed = null;
  };

  Editor.prototype.unitStyle = function (uid) {
    var u = this.units[uid];
    return this.sel[uid] ? { color: '#000', weight: 3, fillColor: '#ffeb3b' } : { color: '#333', weight: 1.5, fillColor: u.colour };
  };

  Editor.prototype.drawSelection = function () {
    var nsel = 0, nhh = 0;
    for (var uid in this.units) {
      var u = this.units[uid];
      u.marker.setStyle(this.unitStyle(uid));
      if (this.sel[uid]) { nsel += 1; nhh += u.props.households; u.marker.bringToFront(); }
    }
    this.el.nsel.textContent = nsel;
    this.el.nhh.textContent = nhh;
    this.attr('selected', nsel);
    this.refreshButtons();
  };

  Editor.prototype.selectionByGrid = function () {
    var out = {};
    for (var uid in this.sel) {
      var u = this.units[uid];
      if (!u) continue;
      out[u.props.grid_code] = (out[u.props.grid_code] || 0) + u.props.households;
    }
    return out;
  };

  /* --------------------------------------------------------------- edits */
  Editor.prototype.move = function () {
    var b = [], h = [];
    for (var uid in this.sel) {
      var u = this.units[uid];
      if (!u) continue;
      (u.props.kind === 'building' ? b : h).push(u.props.id);
    }
    if (!this.target || !(b.length || h.length)) return Promise.resolve(null);
    var body = { op: 'move', buildings: b, households: h, to_grid: this.target };
    if (this.el.allow.checked) body.allow_out_of_band = true;
    return this.send('/edits', body, '移入 ' + this.target);
  };

  Editor.prototype.validate = function () {
    var self = this, out = this.el.out;
    out.innerHTML = '<div class="gm-ed-hint">校验中…</div>';
    return this.api('GET', '/' + this.draft.id + '/validate').then(function (x) {
      if (!x.ok) { out.innerHTML = ''; self.say('校验未完成：' + self.problem(x), 'err'); return null; }
      var v = x.body, ex = Object.keys(v.exceptions || {});
      function list(title, items, cls) {
        return items.length ? '<div class="' + cls + '"><b>' + title + '</b><ul>' +
          items.map(function (p) { return '<li>' + esc(p) + '</li>'; }).join('') + '</ul></div>' : '';
      }
      out.innerHTML = '<div class="gm-ed-validation" data-valid="' + (v.valid ? '1' : '0') + '">' +
        '<b>' + (v.valid ? '校验通过' : '校验发现 ' + v.problems.length + ' 个问题') + '</b>（版本 ' + v.version +
        '，' + v.grids + ' 个网格，' + v.households + ' 户）' +
        list('问题', v.problems, 'gm-ed-problems') + list('提示', v.warnings, 'gm-ed-warnings') +
        list('范围外网格及原因', ex.map(function (c) { return c + '：' + v.exceptions[c]; }), 'gm-ed-exceptions') + '</div>';
      return v;
    });
  };

  Editor.prototype.diff = function () {
    var self = this, out = this.el.out, base = this.opts.planId;
    out.innerHTML = '<div class="gm-ed-hint">对比中…</div>';
    return this.api('GET', '/' + base + '/diff/' + this.draft.id).then(function (x) {
      if (!x.ok) { out.innerHTML = ''; self.say('对比未完成：' + self.problem(x), 'err'); return null; }
      var s = x.body.summary || {};
      var names = {
        households_changed: '换网格的住户', households_added: '新增住户', households_removed: '移除住户',
        created: '新网格', retired: '撤销的网格', reshaped: '边界改变的网格', unchanged: '未变网格数'
      };
      self.diffCodes = {};
      (s.created || []).concat(s.reshaped || []).forEach(function (c) { self.diffCodes[c] = 1; });
      self.restyleGrids();
      out.innerHTML = '<div class="gm-ed-diff"><b>与已发布方案 #' + base + ' 相比</b>（改变的网格以紫色边框标出）<table>' +
        Object.keys(s).map(function (k) {
          var v = s[k];
          return '<tr><th>' + esc(names[k] || k) + '</th><td>' + esc(Array.isArray(v) ? v.join(', ') || '—' : v) + '</td></tr>';
        }).join('') + '</table></div>';
      return x.body;
    });
  };

  Editor.prototype.publish = function () {
    var self = this, d = this.draft;
    this.setBusy(true, '发布');
    return this.api('POST', '/' + d.id + '/publish').then(function (x) {
      self.setBusy(false);
      if (x.status === 409) { self.say('发布未完成：' + self.problem(x), 'err'); return null; }
      if (!x.ok) { self.say('发布未完成：' + self.problem(x), 'err'); return null; }
      d.status = x.body.status;
      self.attr('status', d.status);
      self.el.state.textContent = '方案 #' + d.id + ' · 已发布';
      self.say('草稿 #' + d.id + ' 已发布。<button type="button" class="gm-ed-reload-page">重新载入地图</button>', 'ok', true);
      var btn = self.el.msg.querySelector('.gm-ed-reload-page');
      if (btn) btn.addEventListener('click', function () { location.reload(); });
      self.refreshButtons();
      self.loadDrafts();
      return x.body;
    });
  };

  /* ------------------------------------------------------------- entry */
  GM.edit = function (map, opts) {
    var st = map._gridmap;
    if (!st) return null;
    var ed = st.edit = new Editor(map, st, L.extend({ editZoom: 15 }, opts));
    // the legend's key box (gridmap.js) reports the key's role once it is accepted
    var prev = st.onKey;
    st.onKey = function (key, role, area) {
      if (prev) prev(key, role, area);
      if (role === 'planner') ed.enable(key, area);
      else ed.disable();
    };
    return ed;
  };
})();
