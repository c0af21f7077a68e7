/* GridMap: measure a distance and an area on the map (测距 / 面积).
 *
 * The button 测 starts: each click on the map adds a point; the line's length
 * (and, from three points, the area it encloses) is shown beside the last
 * point and in the button's title. A double click, the button again or Enter
 * ends it; 清 (or Esc) removes it. Lengths are great-circle (Leaflet's
 * L.CRS.Earth.distance), areas spherical (the formula Leaflet.draw uses).
 * Written without string evaluation, so pages can run under a CSP without
 * 'unsafe-eval' (leaflet-measure, used before, compiled its templates). */
(function () {
  'use strict';
  var GM = (window.GridMap = window.GridMap || {});
  var R = 6378137, D2R = Math.PI / 180;

  function lengthOf(pts) {
    var m = 0;
    for (var i = 1; i < pts.length; i++) m += L.CRS.Earth.distance(pts[i - 1], pts[i]);
    return m;
  }

  function areaOf(pts) {
    var n = pts.length, a = 0;
    if (n < 3) return 0;
    for (var i = 0; i < n; i++) {
      var p = pts[i], q = pts[(i + 1) % n];
      a += (q.lng - p.lng) * D2R * (2 + Math.sin(p.lat * D2R) + Math.sin(q.lat * D2R));
    }
    return Math.abs(a * R * R / 2);
  }
  GM.measureLength = lengthOf;
  GM.measureArea = areaOf;

  function fmtLength(m) {
    if (m < 1000) return Math.round(m) + ' 米';
    return (m / 1000).toFixed(m < 10000 ? 2 : 1) + ' 公里';
  }

  function fmtArea(a) {
    if (a < 1e6) return Math.round(a).toLocaleString('zh-CN') + ' 平方米（' + (a / 666.6667).toFixed(1) + ' 亩）';
    return (a / 1e6).toFixed(2) + ' 平方公里';
  }

  GM.measure = function (map, opts) {
    var ctl = L.control({ position: (opts && opts.position) || 'topleft' });
    var box = map.getContainer(), active = false, pts = [], layer = L.layerGroup();
    var line = null, area = null, tip = null, btn = null;

    function show() {
      layer.clearLayers();
      if (!pts.length) { box.removeAttribute('data-gridmap-measure'); return; }
      line = L.polyline(pts, { color: '#d7301f', weight: 3, dashArray: '6 4', interactive: false }).addTo(layer);
      area = pts.length >= 3 ? L.polygon(pts, { color: '#d7301f', weight: 0, fillOpacity: 0.12, interactive: false }).addTo(layer) : null;
      pts.forEach(function (p) {
        L.circleMarker(p, { radius: 4, color: '#d7301f', weight: 2, fillColor: '#fff', fillOpacity: 1, interactive: false }).addTo(layer);
      });
      var m = lengthOf(pts), a = areaOf(pts);
      var text = '长度 ' + fmtLength(m) + (pts.length >= 3 ? '<br>面积 ' + fmtArea(a) : '');
      tip = L.marker(pts[pts.length - 1], {
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: 'gm-measure-tip', html: text, iconSize: null, iconAnchor: [-10, 10] })
      }).addTo(layer);
      box.setAttribute('data-gridmap-measure', JSON.stringify({ points: pts.length, metres: Math.round(m * 10) / 10, square_metres: Math.round(a) }));
      if (btn) btn.title = '测距：' + fmtLength(m) + (pts.length >= 3 ? '，面积 ' + fmtArea(a) : '');
    }

    var clicks = GM.pointClicks(map, {
      last: function () { return pts[pts.length - 1] || null; },
      onPoint: function (ll) { pts.push(ll); show(); },
      onDouble: function () { finish(); }
    });

    function onKey(e) {
      if (e.key === 'Escape') clear();
      else if (e.key === 'Enter' && active) finish();
    }

    function start() {
      active = true;
      pts = [];
      show();
      L.DomUtil.addClass(box, 'gm-measuring');
      L.DomUtil.addClass(btn, 'gm-on');
      clicks.on();
      L.DomEvent.on(document, 'keydown', onKey);
    }

    function finish() {
      if (!active) return;
      active = false;
      L.DomUtil.removeClass(box, 'gm-measuring');
      L.DomUtil.removeClass(btn, 'gm-on');
      clicks.off();
    }

    function clear() {
      finish();
      pts = [];
      show();
      L.DomEvent.off(document, 'keydown', onKey);
    }

    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'leaflet-bar gm-measure');
      btn = L.DomUtil.create('a', 'gm-measure-toggle', div);
      btn.href = '#';
      btn.title = '测距和面积：点击地图加点，双击结束';
      btn.setAttribute('role', 'button');
      btn.textContent = '测';
      var clr = L.DomUtil.create('a', 'gm-measure-clear', div);
      clr.href = '#';
      clr.title = '清除测量';
      clr.setAttribute('role', 'button');
      clr.textContent = '清';
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.on(btn, 'click', function (e) { L.DomEvent.preventDefault(e); if (active) finish(); else start(); });
      L.DomEvent.on(clr, 'click', function (e) { L.DomEvent.preventDefault(e); clear(); });
      layer.addTo(map);
      return div;
    };
    ctl.points = function () { return pts.slice(); };
    map.addControl(ctl);
    return ctl;
  };
})();
