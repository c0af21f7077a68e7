/* GridMap: grids, households and the people who cover them, drawn with Leaflet.
 * Data comes from maps/*.py; everything is drawn on one canvas renderer and
 * households are built lazily, village by village, only when in view. */
(function () {
  'use strict';
  var GM = (window.GridMap = window.GridMap || {});

  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  GM.esc = esc;

  function unrle(rle, n) {
    var out = new Int32Array(n), k = 0;
    if (!rle) { out.fill(-1); return out; }
    for (var i = 0; i < rle.length; i += 2) {
      for (var j = 0; j < rle[i + 1]; j++) out[k++] = rle[i];
    }
    return out;
  }

  function cumsum(a) {
    var out = new Float64Array(a.length), s = 0;
    for (var i = 0; i < a.length; i++) { s += a[i]; out[i] = s; }
    return out;
  }

  /* Points clicked on the map one by one (the measuring tool, the edit mode's
   * line). Clicks are taken at the container, before the map's layers see them
   * (grids drawn on a canvas keep their clicks from the map), so a click adds a
   * point and opens no popup; a click that ends a drag is a pan; a double
   * click's second click (within 4 px of the last point) adds nothing and the
   * double click calls onDouble; double-click zoom is off meanwhile.
   * opts: onPoint(latlng), last() (the last point or null), onDouble(),
   * onMap(e) (whether the event is for the map: default, not on a control).
   * Returns {on, off}. */
  GM.pointClicks = function (map, opts) {
    var box = map.getContainer(), at = null, dblZoom = false;
    var onMap = opts.onMap || function (e) {
      return !(e.target && e.target.closest && e.target.closest('.leaflet-control'));
    };
    function down(e) { at = [e.clientX, e.clientY]; }
    function click(e) {
      if (e.button !== 0 || !onMap(e)) return;
      L.DomEvent.stop(e);
      if (at && Math.hypot(e.clientX - at[0], e.clientY - at[1]) > 4) return;
      var p = map.mouseEventToContainerPoint(e), last = opts.last();
      if (last && map.latLngToContainerPoint(last).distanceTo(p) < 4) return;
      opts.onPoint(map.containerPointToLatLng(p));
    }
    function dbl(e) {
      if (!onMap(e)) return;
      L.DomEvent.stop(e);
      if (opts.onDouble) opts.onDouble();
    }
    return {
      on: function () {
        dblZoom = map.doubleClickZoom.enabled();
        map.doubleClickZoom.disable();
        box.addEventListener('mousedown', down, true);
        box.addEventListener('click', click, true);
        box.addEventListener('dblclick', dbl, true);
      },
      off: function () {
        box.removeEventListener('mousedown', down, true);
        box.removeEventListener('click', click, true);
        box.removeEventListener('dblclick', dbl, true);
        if (dblZoom) map.doubleClickZoom.enable();
      }
    };
  };

  /* --------------------------------------------------------------- setup */
  GM.setup = function (map, cfg) {
    var st = {
      map: map,
      cfg: cfg,
      renderer: L.canvas({ padding: 0.3, tolerance: 3 }),
      houses: [],
      allHouses: [],
      groups: {},
      mode: 'grid',
      ready: false
    };
    map._gridmap = st;
    map.options.renderer = st.renderer;
    var box = map.getContainer();
    if (cfg.background) box.style.background = cfg.background;
    st.labels = [];
    function zoomClass() {
      var z = map.getZoom();
      L.DomUtil[z < cfg.labelZoom ? 'addClass' : 'removeClass'](box, 'gm-hide-labels');
      L.DomUtil[z < (cfg.labelDetailZoom == null ? cfg.labelZoom : cfg.labelDetailZoom) ? 'addClass' : 'removeClass'](box, 'gm-label-brief');
      L.DomUtil[z < cfg.houseZoom ? 'addClass' : 'removeClass'](box, 'gm-houses-hidden');
    }
    map.on('zoomend', zoomClass);
    // moveend follows zoomend (zoomClass has set the labels' sizes at this zoom);
    // after a pan, labels come into view that the last pass left out
    map.on('moveend overlayadd overlayremove', function () { if (st.ready) declutter(map); });
    /* Ready means a view set from now on stays: the page's own script has run to
     * its end (its initial view, GM.fit, is its last automatic view change) and no
     * zoom animation is under way. */
    function markReady() {
      if (st.ready) return;
      if (map._animatingZoom) { map.once('zoomend', markReady); return; }
      zoomClass();
      declutter(map);
      st.ready = true;
      box.setAttribute('data-gridmap-ready', '1');
    }
    map.whenReady(function () { setTimeout(markReady, 0); });
    return st;
  };

  /* The initial extent, at once: an animated fitBounds ends a frame and 250 ms
   * later on the initial extent, undoing (or, while it runs, swallowing) a view
   * the user or a script set in between. Never again once the page is ready. */
  GM.fit = function (map, bounds) {
    var st = state(map);
    if (st && st.ready) return;
    map.fitBounds(bounds, { animate: false });
  };

  function state(map) { return map._gridmap; }

  GM.gridInfo = function (st, g) {
    var t = st.cfg.grids[g];
    return t ? t[2] : '';
  };

  /* --------------------------------------------------------------- grids */
  GM.grids = function (map, group, geojson) {
    var layer = L.geoJSON(geojson, {
      renderer: state(map).renderer,
      style: function (f) { return GM._gridStyle(group, f); },
      onEachFeature: function (f, lyr) {
        lyr.bindTooltip(function () { return esc(f.properties.tip || ''); }, { sticky: true });
        lyr.bindPopup(function () { return f.properties.pop || ''; }, { maxWidth: 360 });
        lyr.on('mouseover', function () { lyr.setStyle({ weight: 3 }); });
        lyr.on('mouseout', function () { layer.resetStyle(lyr); });
      }
    });
    layer.addTo(group);
    group._gmGrids = layer;
    return layer;
  };

  GM._gridStyle = function (group, f) {
    var p = f.properties;
    var s = {
      color: p.line || '#4d4d4d',
      weight: p.w || 1,
      opacity: 0.9,
      fillColor: p.fill || '#cccccc',
      fillOpacity: p.fo == null ? 0.45 : p.fo
    };
    if (p.dash) s.dashArray = p.dash;
    return s;
  };

  GM.lines = function (map, group, geojson) {
    return L.geoJSON(geojson, {
      renderer: state(map).renderer,
      interactive: false,
      style: function (f) {
        var p = f.properties || {};
        var s = { color: p.line || '#666', weight: p.w || 2, opacity: p.op || 0.9 };
        if (p.dash) s.dashArray = p.dash;
        return s;
      }
    }).addTo(group);
  };

  /* -------------------------------------------------------------- labels */
  /* rows: [lat, lng, text, css class, detail (second line), priority]. Hidden
   * below cfg.labelZoom (CSS); the detail line from cfg.labelDetailZoom. After
   * every zoom (and layer switch) a pass over the labels on screen, highest
   * priority (the larger grid) first, hides each label whose box overlaps one
   * already kept: what is shown never overlaps. */
  GM.labels = function (map, group, rows) {
    if (rows === undefined) { rows = group; group = map; map = null; }  // (group, rows)
    var st = map ? state(map) : null;
    rows.forEach(function (r) {
      var html = '<span>' + esc(r[2]) + (r[4] ? '<em class="gm-detail">' + esc(r[4]) + '</em>' : '') + '</span>';
      var mk = L.marker([r[0], r[1]], {
        icon: L.divIcon({ className: 'gm-label' + (r[3] ? ' ' + r[3] : ''), html: html, iconSize: null }),
        interactive: false,
        keyboard: false
      }).addTo(group);
      if (st) st.labels.push({ m: mk, p: r[5] == null ? 0 : +r[5] });
    });
    if (st) st.labelsSorted = false;
  };

  function declutter(map) {
    var st = state(map);
    if (!st || !st.labels.length) return;
    if (!st.labelsSorted) {
      st.labels.sort(function (a, b) { return b.p - a.p; });
      st.labelsSorted = true;
    }
    var view = map.getContainer().getBoundingClientRect(), kept = [], hide = [], show = [];
    // read every box first (one layout), then write the classes
    st.labels.forEach(function (lb) {
      var el = lb.m.getElement(), span = el && el.firstChild;
      if (!span) return;
      var r = span.getBoundingClientRect();
      if (!r.width || r.right < view.left || r.left > view.right || r.bottom < view.top || r.top > view.bottom) {
        show.push(el);  // off screen or hidden by zoom: not in the way of any other
        return;
      }
      for (var i = 0; i < kept.length; i++) {
        var k = kept[i];
        if (r.left < k.right && r.right > k.left && r.top < k.bottom && r.bottom > k.top) { hide.push(el); return; }
      }
      kept.push(r);
      show.push(el);
    });
    hide.forEach(function (el) { L.DomUtil.addClass(el, 'gm-label-hidden'); });
    show.forEach(function (el) { L.DomUtil.removeClass(el, 'gm-label-hidden'); });
    st.labelPasses = (st.labelPasses || 0) + 1;
    map.getContainer().setAttribute('data-gridmap-labels', String(st.labelPasses));
  }
  GM.declutter = declutter;

  /* ---------------------------------------------------------- households */
  GM.HouseLayer = L.Layer.extend({
    initialize: function (data, st) {
      this._d = data;
      this._st = st;
      this._bounds = L.latLngBounds([data.b[0], data.b[1]], [data.b[2], data.b[3]]);
      this._group = null;
      this._decoded = false;
    },

    _decode: function () {
      if (this._decoded) return;
      var d = this._d;
      this.lng = cumsum(d.x);
      this.lat = cumsum(d.y);
      var np = d.x.length;
      this.cnt = unrle(d.n, np);
      this.start = new Int32Array(np + 1);
      for (var i = 0; i < np; i++) this.start[i + 1] = this.start[i] + this.cnt[i];
      var nh = this.start[np];
      this.g = unrle(d.g, nh);
      this.m = d.m ? unrle(d.m, nh) : null;
      this.o = d.o ? unrle(d.o, nh) : null;
      var addr = new Array(nh), prev = '';
      for (var h = 0; h < nh; h++) {
        prev = prev.slice(0, d.p[h]) + d.s[h];
        addr[h] = prev;
      }
      this.addr = addr;
      this._decoded = true;
    },

    latlng: function (pt) { return L.latLng(this.lat[pt] / 1e6, this.lng[pt] / 1e6); },

    onAdd: function (map) {
      this._map = map;
      this._st.houses.push(this);
      map.on('moveend', this._update, this);
      this._update();
    },

    onRemove: function (map) {
      map.off('moveend', this._update, this);
      var i = this._st.houses.indexOf(this);
      if (i >= 0) this._st.houses.splice(i, 1);
      if (this._group && map.hasLayer(this._group)) map.removeLayer(this._group);
    },

    _visible: function () {
      var m = this._map;
      return m.getZoom() >= this._st.cfg.houseZoom && m.getBounds().pad(0.25).intersects(this._bounds);
    },

    _update: function () {
      var m = this._map;
      if (!m) return;
      if (this._visible()) {
        if (!this._group) this._build();
        if (!m.hasLayer(this._group)) m.addLayer(this._group);
      } else if (this._group && m.hasLayer(this._group)) {
        m.removeLayer(this._group);
      }
    },

    _build: function () {
      this._decode();
      var self = this, st = this._st, np = this.lng.length;
      var g = L.featureGroup();
      for (var pt = 0; pt < np; pt++) {
        var n = this.cnt[pt];
        var mk = L.circleMarker(this.latlng(pt), L.extend({
          renderer: st.renderer,
          radius: n > 1 ? Math.min(12, 4 + Math.sqrt(n) / 2) : 4,
          weight: 1.5,
          opacity: 1,
          fillOpacity: 0.95
        }, this._style(pt)));
        mk._gmPt = pt;
        g.addLayer(mk);
      }
      g.bindPopup(function (lyr) { return self.popupHtml(lyr._gmPt); }, { maxWidth: 420, className: 'gm-popup' });
      g.bindTooltip(function (lyr) { return self.tipHtml(lyr._gmPt); }, { sticky: true, direction: 'top' });
      this._group = g;
    },

    _style: function (pt) {
      var st = this._st, h = this.start[pt];
      var gridC = (st.cfg.grids[this.g[h]] || [])[1] || '#999';
      var mi = this.m ? this.m[h] : -1;
      var memC = mi >= 0 ? st.cfg.members[mi][0] : null;
      if (this.o) return { fillColor: gridC, color: '#d62728', weight: 2.5 };
      if (st.mode === 'member') return { fillColor: memC || '#bbbbbb', color: '#333333' };
      return { fillColor: gridC, color: memC || '#555555' };
    },

    restyle: function () {
      if (!this._group) return;
      var self = this;
      this._group.eachLayer(function (mk) { mk.setStyle(self._style(mk._gmPt)); });
    },

    tipHtml: function (pt) {
      var h = this.start[pt], n = this.cnt[pt], st = this._st;
      var code = (st.cfg.grids[this.g[h]] || [''])[0];
      var t = esc(this.addr[h]) + (n > 1 ? ' 等 ' + n + ' 户' : '');
      return t + '<br>网格 ' + esc(code);
    },

    popupHtml: function (pt) {
      var st = this._st, a = this.start[pt], b = this.start[pt + 1], self = this;
      var rows = [];
      function row(k, v) { rows.push('<tr><th>' + k + '</th><td>' + v + '</td></tr>'); }
      function member(h) { return self.m && self.m[h] >= 0 ? st.cfg.members[self.m[h]][1] : ''; }
      function old(h) { return self.o && self.o[h] >= 0 ? esc((st.cfg.grids[self.o[h]] || [''])[0]) : ''; }
      if (b - a === 1) {
        row('地址', esc(this.addr[a]));
        rows.push(GM.gridInfo(st, this.g[a]));
        if (this.o) row('原网格', old(a) || '（新增）');
        var mm = member(a);
        if (mm) rows.push(mm);
        return '<div class="gm-pop"><table>' + rows.join('') + '</table></div>';
      }
      // several households at one point (an apartment building)
      var first = this.addr[a], last = this.addr[b - 1], k = 0;
      while (k < first.length && first[k] === last[k]) k++;
      var out = ['<div class="gm-pop"><div class="gm-pop-head">' + esc(first.slice(0, k)) + '… 共 ' + (b - a) + ' 户</div>'];
      var grids = {};
      for (var h = a; h < b; h++) grids[this.g[h]] = 1;
      Object.keys(grids).forEach(function (gi) { out.push('<table>' + GM.gridInfo(st, +gi) + '</table>'); });
      out.push('<div class="gm-pop-list"><table><tr><th>户</th><th>网格</th>' + (this.o ? '<th>原网格</th>' : '') + (this.m ? '<th>联户党员</th>' : '') + '</tr>');
      var lim = Math.min(b, a + 400);
      for (h = a; h < lim; h++) {
        var mi = this.m ? this.m[h] : -1;
        out.push('<tr><td>' + esc(this.addr[h].slice(k) || this.addr[h]) + '</td><td>' + esc((st.cfg.grids[this.g[h]] || [''])[0]) + '</td>' +
          (this.o ? '<td>' + old(h) + '</td>' : '') +
          (this.m ? '<td>' + (mi >= 0 ? st.cfg.members[mi][2] : '') + '</td>' : '') + '</tr>');
      }
      out.push('</table>' + (b > lim ? '<div>… 另 ' + (b - lim) + ' 户</div>' : '') + '</div></div>');
      return out.join('');
    },

    /* search records: [title, lat, lng, pt] */
    records: function () {
      this._decode();
      var out = [];
      for (var pt = 0; pt < this.lng.length; pt++) {
        for (var h = this.start[pt]; h < this.start[pt + 1]; h++) out.push([this.addr[h], pt]);
      }
      return out;
    },

    openAt: function (m, pt) {
      this._decode();
      L.popup({ maxWidth: 420, className: 'gm-popup' }).setLatLng(this.latlng(pt)).setContent(this.popupHtml(pt)).openOn(m);
    }
  });

  GM.houses = function (map, group, data) {
    var st = state(map), layer = new GM.HouseLayer(data, st);
    st.allHouses.push(layer);
    group.addLayer(layer);
    return layer;
  };

  /* the layer group of an area code: household layers loaded later join it */
  GM.area = function (map, group, code) {
    state(map).groups[code] = group;
  };

  /* Served public pages: households are not in the page. A viewer key typed in
   * the legend's key box is sent (X-API-Key) to cfg.housesUrl?plan=cfg.planId:
   * the answer is the index (per village its count and box); from the house
   * zoom on, the villages in view are asked for (&areas=…, a few at a time)
   * and become house layers. Each household shown counts against the key's
   * collection cap on the server. The key is kept for this tab only
   * (sessionStorage). */
  var KEY_ITEM = 'gridmap.viewerKey';
  var AREAS_PER_REQUEST = 20;

  function housesBase(cfg) {
    if (!cfg.housesUrl || !window.fetch || !/^https?:$/.test(location.protocol)) return null;
    try {
      var u = new URL(cfg.housesUrl, location.href);
      return u.origin === location.origin ? u : null;
    } catch (e) { return null; }
  }

  /* house layers of the body's groups (village by village): a village loaded
   * again replaces its layer; the others stay */
  GM.addHouses = function (map, body) {
    var st = state(map), pageIdx = {};
    st.cfg.grids.forEach(function (t, i) { pageIdx[t[0]] = i; });
    var remap = body.grids.map(function (code) { return code in pageIdx ? pageIdx[code] : -1; });
    st.cfg.members = body.members || [];
    st.houseAreas = st.houseAreas || {};
    body.groups.forEach(function (grp) {
      var d = grp.data, old = st.houseAreas[grp.area];
      if (old) {
        if (old._gmGroup) old._gmGroup.removeLayer(old);
        st.allHouses = st.allHouses.filter(function (l) { return l !== old; });
      }
      for (var i = 0; i < d.g.length; i += 2) d.g[i] = d.g[i] >= 0 ? remap[d.g[i]] : -1;
      var group = st.groups[grp.area];
      if (!group) {
        group = st.groups[grp.area] = L.featureGroup().addTo(map);
      }
      var lyr = GM.houses(map, group, d);
      lyr._gmGroup = group;
      st.houseAreas[grp.area] = lyr;
    });
    if (st.resetIndex) st.resetIndex();
    return st.allHouses.length;
  };

  function housesUrl(st, areas) {
    var u = new URL(housesBase(st.cfg).href);
    if (st.cfg.planId != null) u.searchParams.set('plan', String(st.cfg.planId));
    if (areas) u.searchParams.set('areas', areas.join(','));
    return u.href;
  }

  function getHouses(st, key, areas) {
    return fetch(housesUrl(st, areas), { headers: { Accept: 'application/json', 'X-API-Key': key }, credentials: 'same-origin' })
      .then(function (r) {
        return r.json().then(function (b) { return { r: r, body: b }; }, function () { return { r: r, body: null }; });
      });
  }

  /* the villages in view (from the house zoom on) not loaded yet */
  GM.loadVisibleHouses = function (map) {
    var st = state(map), hk = st.houseKey;
    if (!hk || !st.houseIndex || map.getZoom() < st.cfg.houseZoom) return Promise.resolve(0);
    var view = map.getBounds().pad(0.2), want = [];
    st.houseIndex.forEach(function (g) {
      if (hk.loaded[g.area] || hk.pending[g.area]) return;
      var b = L.latLngBounds([g.bbox[1], g.bbox[0]], [g.bbox[3], g.bbox[2]]);
      if (view.intersects(b)) want.push(g.area);
    });
    if (!want.length) return Promise.resolve(0);
    var chunks = [];
    for (var i = 0; i < want.length; i += AREAS_PER_REQUEST) chunks.push(want.slice(i, i + AREAS_PER_REQUEST));
    return Promise.all(chunks.map(function (areas) {
      areas.forEach(function (a) { hk.pending[a] = 1; });
      return getHouses(st, hk.key, areas).then(function (x) {
        areas.forEach(function (a) { delete hk.pending[a]; });
        if (!x.r.ok || !x.body) {
          var d = x.body && (x.body.detail || x.body.title);
          if (hk.msg) hk.msg.textContent = d ? String(d) : '加载失败（' + x.r.status + '）';
          return 0;
        }
        GM.addHouses(map, x.body);
        var n = 0;
        x.body.groups.forEach(function (g) { hk.loaded[g.area] = 1; n += g.n; });
        hk.shown += n;
        st.map.getContainer().setAttribute('data-gridmap-houses-loaded', String(hk.shown));
        if (hk.msg) hk.msg.textContent = '已加载 ' + hk.shown + ' / ' + hk.total + ' 户';
        return n;
      }, function () {
        areas.forEach(function (a) { delete hk.pending[a]; });
        if (hk.msg) hk.msg.textContent = '加载失败';
        return 0;
      });
    }));
  };

  GM.loadHouses = function (map, key, msg) {
    var st = state(map), base = housesBase(st.cfg);
    if (!base) return Promise.resolve(false);
    if (msg) msg.textContent = '加载中…';
    return getHouses(st, key, null)
      .then(function (x) {
        if (!x.r.ok || !x.body) {
          var d = x.body && (x.body.detail || x.body.title);
          if (msg) msg.textContent = d ? String(d) : '加载失败（' + x.r.status + '）';
          if (x.r.status === 401 || x.r.status === 403) {
            try { sessionStorage.removeItem(KEY_ITEM); } catch (e) { /* private mode */ }
          }
          return false;
        }
        var total = 0;
        x.body.groups.forEach(function (g) { total += g.n; });
        // a new key: the households of the last one go
        st.allHouses.slice().forEach(function (lyr) { if (lyr._gmGroup) lyr._gmGroup.removeLayer(lyr); });
        st.allHouses = [];
        st.houseAreas = {};
        if (st.resetIndex) st.resetIndex();
        st.houseIndex = x.body.groups;
        st.cfg.members = x.body.members || [];
        st.houseKey = { key: key, msg: msg, loaded: {}, pending: {}, shown: 0, total: total };
        if (!st.houseMoves) {
          st.houseMoves = true;
          map.on('moveend', function () { GM.loadVisibleHouses(map); });
        }
        if (st.onKey) {
          st.onKey(key, x.r.headers.get('X-GridMap-Key-Role'), x.r.headers.get('X-GridMap-Key-Area') || null);
        }
        try { sessionStorage.setItem(KEY_ITEM, key); } catch (e) { /* private mode */ }
        if (msg) msg.textContent = '可查看 ' + total + ' 户：放大到 ' + st.cfg.houseZoom + ' 级时加载视野内的村';
        st.map.getContainer().setAttribute('data-gridmap-houses', String(total));
        st.map.getContainer().setAttribute('data-gridmap-houses-loaded', '0');
        return GM.loadVisibleHouses(map).then(function () { return true; });
      })
      .catch(function () {
        if (msg) msg.textContent = '加载失败';
        return false;
      });
  };

  function keyBox(map, div) {
    var form = div.querySelector('form.gm-keybox');
    if (!form) return;
    var input = form.querySelector('input[name=key]'), msg = form.querySelector('.gm-keybox-msg');
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var key = input.value.trim();
      if (!key) { msg.textContent = '请输入密钥'; return; }
      GM.loadHouses(map, key, msg).then(function (ok) { if (ok) input.value = ''; });
    });
    var saved = null;
    try { saved = sessionStorage.getItem(KEY_ITEM); } catch (e) { /* private mode */ }
    if (saved) GM.loadHouses(map, saved, msg);
  }

  GM.setMode = function (map, mode) {
    var st = state(map);
    st.mode = mode;
    st.houses.forEach(function (h) { h.restyle(); });
  };

  /* -------------------------------------------------------------- legend */
  GM.legend = function (map, html, position) {
    var ctl = L.control({ position: position || 'bottomright' });
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gm-legend leaflet-bar');
      div.innerHTML = html;
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      keyBox(map, div);
      var radios = div.querySelectorAll('input[name=gm-mode]');
      Array.prototype.forEach.call(radios, function (r) {
        r.addEventListener('change', function () { if (r.checked) GM.setMode(map, r.value); });
      });
      return div;
    };
    ctl.addTo(map);
    return ctl;
  };

  /* -------------------------------------------------------------- search */
  /* The lookup API of a served viewer (cfg.lookupUrl), same origin only; null in
   * saved files, which search their own data. */
  function lookupBase(cfg) {
    if (!cfg.lookupUrl || !window.fetch || !/^https?:$/.test(location.protocol)) return null;
    try {
      var u = new URL(cfg.lookupUrl, location.href);
      return u.origin === location.origin ? u : null;
    } catch (e) { return null; }
  }

  function contactRow(label, c) {
    if (!c) return '';
    return '<tr><th>' + label + '</th><td>' + esc(c.name) + (c.work_phone ? ' <a href="tel:' + esc(String(c.work_phone).replace(/[^\d+]/g, '')) + '">' + esc(c.work_phone) + '</a>' : '') + '</td></tr>';
  }

  GM.search = function (map, opts) {
    var st = state(map), byTitle = null, gridByCode = null;
    var api = lookupBase(st.cfg), answers = {}, hit = null;
    st.resetIndex = function () { byTitle = null; };
    function index() {
      if (byTitle) return byTitle;
      byTitle = {};
      st.cfg.grids.forEach(function (t) {
        if (t[3] == null) return;
        byTitle['网格 ' + t[0]] = { grid: t, loc: [t[3], t[4]] };
      });
      st.allHouses.forEach(function (layer) {
        layer.records().forEach(function (r) {
          if (!(r[0] in byTitle)) byTitle[r[0]] = { layer: layer, pt: r[1], loc: [layer.lat[r[1]] / 1e6, layer.lng[r[1]] / 1e6] };
        });
      });
      return byTitle;
    }
    function gridRow(code) {
      if (!gridByCode) {
        gridByCode = {};
        st.cfg.grids.forEach(function (t) { gridByCode[t[0]] = t; });
      }
      return gridByCode[code];
    }
    function localSearch(text) {
      var idx = index(), q = text.toLowerCase(), out = [];
      for (var t in idx) {
        if (t.toLowerCase().indexOf(q) >= 0) {
          out.push({ title: t, loc: idx[t].loc });
          if (out.length >= 30) break;
        }
      }
      return out;
    }
    /* where an API answer is on this map: its house, else its grid */
    function place(a) {
      var addr = a.household && a.household.address, code = a.grid && a.grid.code;
      var rec = addr != null ? index()[addr] : null;
      if (rec && rec.layer) return { loc: rec.loc, rec: rec };
      var g = code ? gridRow(code) : null;
      if (g && g[3] != null) return { loc: [g[3], g[4]], grid: g };
      return null;
    }
    function title(a) {
      var addr = a.household ? a.household.address : '';
      return (addr || '') + (a.grid ? '（网格 ' + a.grid.code + '）' : '');
    }
    function mark(loc) {
      if (hit) map.removeLayer(hit);
      hit = L.marker(loc, {
        icon: L.divIcon({ className: 'gm-hit', iconSize: [26, 26] }),
        interactive: false,
        keyboard: false,
        zIndexOffset: 1000
      }).addTo(map);
      st.hit = hit;
    }
    /* zoom to an API answer, ring it and open its popup */
    function go(a) {
      var p = place(a);
      if (!p) {
        ctl.showAlert(esc(title(a)) + ' 不在本图范围内');
        return false;
      }
      map.setView(p.loc, p.rec ? (opts.zoom || 17) : Math.max(map.getZoom(), 15), { animate: false });
      mark(p.loc);
      var lyr = p.rec && p.rec.layer, n = lyr ? lyr.cnt[p.rec.pt] : 0;
      if (n === 1) {
        lyr.openAt(map, p.rec.pt);
        return true;
      }
      // a grid, or one household of a building: the answer itself, not the whole list
      var g = p.grid || (a.grid && gridRow(a.grid.code));
      var html = '<div class="gm-pop"><table>' +
        (a.household ? '<tr><th>地址</th><td>' + esc(a.household.address) + '</td></tr>' : '') +
        (g ? g[2] : '') + (g ? '' : contactRow('网格员', a.grid_worker)) +
        contactRow('联户党员', a.party_member) + '</table>' +
        (n > 1 ? '<div class="gm-note">此处共 ' + n + ' 户，点击圆点查看全部</div>' : '') + '</div>';
      L.popup({ maxWidth: 420, className: 'gm-popup' }).setLatLng(p.loc).setContent(html).openOn(map);
      return true;
    }
    function problem(r, body) {
      var msg = body && (body.detail || body.title);
      return msg ? String(msg) : '查询失败（' + r.status + '）';
    }
    /* GET lookupUrl?address=text: jump to a match, list ranked candidates, or
     * show the problem's detail. callResponse gets the tips ({title, loc}). */
    function lookup(text, callResponse) {
      var ctrl = window.AbortController ? new AbortController() : null;
      var u = new URL(api.href);
      u.searchParams.set('address', text);
      u.searchParams.set('limit', '8');
      // anonymous lookups answer one exact address; a key typed in the legend
      // (sessionStorage) also gets the household and the ranked candidates
      var headers = { Accept: 'application/json' }, saved = null;
      try { saved = sessionStorage.getItem(KEY_ITEM); } catch (e) { /* private mode */ }
      if (saved) headers['X-API-Key'] = saved;
      fetch(u.href, { headers: headers, credentials: 'same-origin', signal: ctrl ? ctrl.signal : undefined })
        .then(function (r) {
          return r.json().then(function (body) { return { r: r, body: body }; }, function () { return { r: r, body: null }; });
        })
        .then(function (x) {
          var body = x.body, tips = [];
          answers = {};
          if (!x.r.ok || !body) {
            callResponse([]);
            ctl.showAlert(esc(problem(x.r, body)));
            return;
          }
          var ranked = (body.result ? [body.result] : []).concat(body.candidates || []);
          if (body.result && body.match !== 'ambiguous') {
            go(body.result);
            ranked = ranked.slice(1);
          }
          ranked.forEach(function (a) {
            var p = place(a), t = title(a);
            if (!p || t in answers) return;
            answers[t] = a;
            tips.push({ title: t, loc: p.loc });
          });
          callResponse(tips);
          if (!body.result && !tips.length) ctl.showAlert('候选住户不在本图范围内');
        })
        .catch(function (e) {
          if (e && e.name === 'AbortError') return;
          callResponse([]);
          ctl.showAlert('查询失败');
        });
      return { abort: function () { if (ctrl) ctrl.abort(); } };
    }
    function isGridQuery(text) { return /^\s*网格/.test(text) || /^\s*\d{4,}\s*$/.test(text); }

    var ctl = new L.Control.Search({
      position: opts.position || 'topleft',
      textPlaceholder: opts.placeholder || '',
      textErr: '未找到',
      textCancel: '取消',
      initial: false,
      zoom: opts.zoom || 17,
      minLength: 2,
      tooltipLimit: 30,
      autoCollapseTime: api ? 8000 : 1200,
      marker: false,
      autoCollapse: false,
      propertyName: 'title',
      propertyLoc: 'loc',
      // sourceData already filters (the API normalises: its titles need not contain the text)
      filterData: function (text, records) { return records; },
      sourceData: function (text, callResponse) {
        if (api && !isGridQuery(text)) return lookup(text, callResponse);
        callResponse(localSearch(text));
        return { abort: function () {} };
      }
    });
    ctl.on('search:locationfound', function (e) {
      if (e.text in answers) { go(answers[e.text]); return; }
      var rec = index()[e.text];
      if (!rec) return;
      if (rec.grid) {
        L.popup({ maxWidth: 360 }).setLatLng(rec.loc).setContent('<div class="gm-pop"><table>' + rec.grid[2] + '</table></div>').openOn(map);
      } else {
        rec.layer.openAt(map, rec.pt);
      }
    });
    if (api) {
      // Enter before the typing delay has run: ask the API now, not the stale tips
      var submit = ctl._handleSubmit;
      ctl._handleSubmit = function () {
        var v = this._input.value;
        if (v && this._input.style.display !== 'none' && !isGridQuery(v) &&
            !(this._recordsCache && this._recordsCache.hasOwnProperty(v))) {
          clearTimeout(this.timerKeypress);
          this.hideAlert();
          this._fillRecordsCache();
          return;
        }
        submit.call(this);
      };
    }
    map.addControl(ctl);
    // Chinese is typed through an IME, which gives no usable keyup: search on input too
    L.DomEvent.on(ctl._input, 'input', function () { ctl._handleKeypress({ keyCode: 0 }); });
    return ctl;
  };

})();
