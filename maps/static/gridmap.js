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

  /* --------------------------------------------------------------- setup */
  GM.setup = function (map, cfg) {
    var st = {
      map: map,
      cfg: cfg,
      renderer: L.canvas({ padding: 0.3, tolerance: 3 }),
      houses: [],
      allHouses: [],
      mode: 'grid',
      ready: false
    };
    map._gridmap = st;
    map.options.renderer = st.renderer;
    var box = map.getContainer();
    if (cfg.background) box.style.background = cfg.background;
    function zoomClass() {
      var z = map.getZoom();
      L.DomUtil[z < cfg.labelZoom ? 'addClass' : 'removeClass'](box, 'gm-hide-labels');
      L.DomUtil[z < cfg.houseZoom ? 'addClass' : 'removeClass'](box, 'gm-houses-hidden');
    }
    map.on('zoomend', zoomClass);
    map.whenReady(function () {
      zoomClass();
      st.ready = true;
      box.setAttribute('data-gridmap-ready', '1');
    });
    return st;
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
  GM.labels = function (group, rows) {
    rows.forEach(function (r) {
      L.marker([r[0], r[1]], {
        icon: L.divIcon({ className: 'gm-label' + (r[3] ? ' ' + r[3] : ''), html: '<span>' + esc(r[2]) + '</span>', iconSize: null }),
        interactive: false,
        keyboard: false
      }).addTo(group);
    });
  };

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
  GM.search = function (map, opts) {
    var st = state(map), byTitle = null;
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
    var ctl = new L.Control.Search({
      position: opts.position || 'topleft',
      textPlaceholder: opts.placeholder || '',
      textErr: '未找到',
      textCancel: '取消',
      initial: false,
      zoom: opts.zoom || 17,
      minLength: 2,
      tooltipLimit: 30,
      marker: false,
      autoCollapse: false,
      propertyName: 'title',
      propertyLoc: 'loc',
      sourceData: function (text, callResponse) {
        var idx = index(), q = text.toLowerCase(), out = [];
        for (var t in idx) {
          if (t.toLowerCase().indexOf(q) >= 0) {
            out.push({ title: t, loc: idx[t].loc });
            if (out.length >= 30) break;
          }
        }
        callResponse(out);
        return { abort: function () {} };
      }
    });
    ctl.on('search:locationfound', function (e) {
      var rec = index()[e.text];
      if (!rec) return;
      if (rec.grid) {
        L.popup({ maxWidth: 360 }).setLatLng(rec.loc).setContent('<div class="gm-pop"><table>' + rec.grid[2] + '</table></div>').openOn(map);
      } else {
        rec.layer.openAt(map, rec.pt);
      }
    });
    map.addControl(ctl);
    // Chinese is typed through an IME, which gives no usable keyup: search on input too
    L.DomEvent.on(ctl._input, 'input', function () { ctl._handleKeypress({ keyCode: 0 }); });
    return ctl;
  };

})();
