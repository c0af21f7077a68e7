/* GridMap events layer (三事分流): open matters per grid, overdue ones marked.
 * Counts come with the page (maps.events / coverage_map(events=...)) or, on the
 * served viewer, from cfg.eventsUrl (public: counts per grid only). Holders of a
 * worker or planner key also get the open events themselves from
 * cfg.eventPointsUrl (category, status, tier, deadline; no resident data). */
(function () {
  'use strict';
  var GM = (window.GridMap = window.GridMap || {});
  var TIER = { grid: '民事', village: '村事', township: '政事' };
  var STATUS = {
    reported: '已上报', sorted: '已分流', in_hand: '办理中', returned: '已退回'
  };

  function esc(s) { return GM.esc(s); }
  function state(map) { return map._gridmap; }

  function sameOrigin(url) {
    if (!url || !window.fetch || !/^https?:$/.test(location.protocol)) return null;
    try {
      var u = new URL(url, location.href);
      return u.origin === location.origin ? u : null;
    } catch (e) { return null; }
  }

  /* counts: {grids: [codes], open: [n], overdue: [n]} (codes of the page's grids) */
  GM.eventCounts = function (map, counts) {
    var st = state(map), ev = st.events;
    if (!ev) return 0;
    ev.counts.clearLayers();
    var idx = {};
    st.cfg.grids.forEach(function (t, i) { idx[t[0]] = i; });
    var nOpen = 0, nLate = 0, nGrids = 0;
    counts.grids.forEach(function (code, k) {
      var g = idx[code], open = counts.open[k], late = counts.overdue[k];
      if (g == null || !open) return;
      var t = st.cfg.grids[g];
      if (t[3] == null) return;
      nOpen += open; nLate += late; nGrids += 1;
      var size = Math.round(18 + 4 * Math.sqrt(open));
      var cls = 'gm-ev-count' + (late ? ' gm-ev-overdue' : '');
      var html = '<span>' + open + (late ? '<b>!</b>' : '') + '</span>';
      L.marker([t[3], t[4]], {
        icon: L.divIcon({ className: cls, html: html, iconSize: [size, size] }),
        keyboard: false,
        zIndexOffset: 500
      }).bindTooltip(
        '网格 ' + esc(code) + '：未办结 ' + open + ' 件' + (late ? '，超期 ' + late + ' 件' : ''),
        { direction: 'top' }
      ).addTo(ev.counts);
    });
    ev.totals = { open: nOpen, overdue: nLate, grids: nGrids };
    if (ev.note) {
      ev.note.innerHTML = '<b>未办结事件</b> ' + nOpen + ' 件（' + nGrids + ' 个网格）' +
        (nLate ? ' · <span class="gm-ev-late">超期 ' + nLate + ' 件</span>' : '');
    }
    var box = map.getContainer();
    box.setAttribute('data-gridmap-events', String(nOpen));
    box.setAttribute('data-gridmap-events-overdue', String(nLate));
    return nOpen;
  };

  GM.loadEventCounts = function (map) {
    var st = state(map), u = sameOrigin(st.cfg.eventsUrl);
    if (!u) return Promise.resolve(false);
    if (st.cfg.planId != null) u.searchParams.set('plan', String(st.cfg.planId));
    return fetch(u.href, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return false;
        GM.eventCounts(map, body);
        return true;
      })
      .catch(function () { return false; });
  };

  function pointPopup(e) {
    var rows = [
      ['事件', '#' + e[3]],
      ['类别', esc(e[8]) + ' · ' + esc(e[7])],
      ['分流', esc(TIER[e[5]] || e[5])],
      ['状态', esc(STATUS[e[4]] || e[4]) + (e[6] ? ' <span class="gm-ev-late">超期</span>' : '')],
      ['上报', esc(e[9])],
      ['期限', esc(e[10])]
    ];
    return '<div class="gm-pop"><table>' + rows.map(function (r) {
      return '<tr><th>' + r[0] + '</th><td>' + r[1] + '</td></tr>';
    }).join('') + '</table></div>';
  }

  /* body: {events: [[lon, lat, grid, id, status, tier, overdue, category, class,
   * reported, deadline]]} */
  GM.eventPoints = function (map, body) {
    var st = state(map), ev = st.events;
    if (!ev) return 0;
    ev.points.clearLayers();
    body.events.forEach(function (e) {
      L.circleMarker([e[1], e[0]], {
        renderer: st.renderer,
        radius: 5,
        color: e[6] ? '#c62828' : '#7a4100',
        weight: e[6] ? 2.5 : 1,
        fillColor: e[6] ? '#ef5350' : '#ffb74d',
        fillOpacity: 0.95
      }).bindTooltip(esc(e[7]) + (e[6] ? '（超期）' : ''), { direction: 'top' })
        .bindPopup(pointPopup(e), { maxWidth: 320 })
        .addTo(ev.points);
    });
    map.getContainer().setAttribute('data-gridmap-event-points', String(body.events.length));
    return body.events.length;
  };

  GM.loadEventPoints = function (map, key) {
    var st = state(map), u = sameOrigin(st.cfg.eventPointsUrl);
    if (!u || !st.events) return Promise.resolve(false);
    if (st.cfg.planId != null) u.searchParams.set('plan', String(st.cfg.planId));
    return fetch(u.href, { headers: { Accept: 'application/json', 'X-API-Key': key }, credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return false;
        GM.eventPoints(map, body);
        return true;
      })
      .catch(function () { return false; });
  };

  /* The events group of the layer control: counts (and points for key holders). */
  GM.events = function (map, group, counts) {
    var st = state(map);
    var ev = st.events = {
      group: group,
      counts: L.featureGroup().addTo(group),
      points: L.featureGroup().addTo(group),
      totals: null,
      note: null
    };
    var ctl = L.control({ position: 'bottomleft' });
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gm-legend gm-ev-legend leaflet-bar');
      L.DomEvent.disableClickPropagation(div);
      ev.note = div;
      div.innerHTML = '<b>未办结事件</b> 加载中…';
      return div;
    };
    ctl.addTo(map);
    map.on('overlayremove', function (e) { if (e.layer === group) ctl.remove(); });
    map.on('overlayadd', function (e) { if (e.layer === group) ctl.addTo(map); });
    if (counts) {
      GM.eventCounts(map, counts);
    } else {
      GM.loadEventCounts(map).then(function (ok) {
        if (!ok) ev.note.innerHTML = '<b>未办结事件</b> 无数据';
      });
    }
    // a key typed in the legend's key box (gridmap.js): a worker's or planner's
    // key also draws the open events themselves
    st.onKey = function (key, role) {
      if (/^(worker|planner)$/.test(role || '')) GM.loadEventPoints(map, key);
    };
    return ev;
  };
})();
