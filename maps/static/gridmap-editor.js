// GridMap's notebook editor (anywidget front end of maps.editor.GridEditor).
// Leaflet (vendored, window.L) is prepended by Python. This file only selects and
// displays: every edit is a message to Python, which runs it through
// geo.editing.Draft (the rules live once, in geo) and sends back the new state.

function bandColour(n, lo, hi) {
  if (n < lo) return "#4575b4"; // under the band
  if (n > hi) return "#d73027"; // over the band
  // in band: a diverging ramp, pale at the middle, distinct ends
  const t = (n - (lo + hi) / 2) / ((hi - lo) / 2); // -1 … 1
  const mix = (a, b, f) => Math.round(a + (b - a) * f);
  const mid = [217, 240, 211]; // pale green
  const end = t < 0 ? [90, 174, 97] : [27, 120, 55];
  const f = Math.abs(t);
  return `rgb(${mix(mid[0], end[0], f)},${mix(mid[1], end[1], f)},${mix(mid[2], end[2], f)})`;
}

function inside(pt, ring) {
  // ray casting in lon/lat: is pt = [lng, lat] inside ring [[lng, lat], ...]
  let c = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > pt[1] !== yj > pt[1] && pt[0] < ((xj - xi) * (pt[1] - yi)) / (yj - yi) + xi) {
      c = !c;
    }
  }
  return c;
}

// the id a unit is selected by (maps.editor.unit_id): a building's id, or
// h:<household id> for a household without one
function unitId(p) {
  return p.kind === "building" ? p.id : "h:" + p.id;
}

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.className = "gm-ed-btn";
  b.addEventListener("click", onClick);
  return b;
}

function render({ model, el }) {
  const L = window.L;
  el.classList.add("gm-editor");
  const mapDiv = document.createElement("div");
  mapDiv.className = "gm-editor-map";
  mapDiv.style.height = model.get("height") + "px";
  const side = document.createElement("div");
  side.className = "gm-editor-side";
  el.append(mapDiv, side);

  const map = L.map(mapDiv, { boxZoom: false, zoomControl: true });
  const gridLayer = L.featureGroup().addTo(map);
  const buildingLayer = L.featureGroup().addTo(map);
  const lassoLayer = L.featureGroup().addTo(map);
  let tool = "click"; // click | lasso | brush
  const markers = new Map(); // building id -> circle marker

  // --- the side panel ---------------------------------------------------------
  const tools = document.createElement("div");
  tools.className = "gm-ed-tools";
  const toolButtons = {};
  for (const [name, label, title] of [
    ["click", "点选", "click buildings (shift-click adds)"],
    ["lasso", "套索", "draw a lasso around buildings"],
    ["brush", "刷选", "paint over buildings"],
  ]) {
    toolButtons[name] = button(label, title, () => setTool(name));
    toolButtons[name].dataset.tool = name;
    tools.append(toolButtons[name]);
  }
  const selInfo = document.createElement("div");
  selInfo.className = "gm-ed-selection";
  const target = document.createElement("select");
  target.className = "gm-ed-target";
  const moveBtn = button("移入网格", "move the selected buildings into the grid", () =>
    model.send({ op: "move", to_grid: target.value }),
  );
  moveBtn.className += " gm-ed-move";
  const gridOps = document.createElement("div");
  gridOps.className = "gm-ed-actions";
  gridOps.append(
    button("锁定", "lock the grid in the list", () =>
      model.send({ op: "lock", grid: target.value }),
    ),
    button("解锁", "unlock the grid in the list", () =>
      model.send({ op: "unlock", grid: target.value }),
    ),
    button("拆分", "split the grid in the list in two (the engine)", () =>
      model.send({ op: "split", grid: target.value }),
    ),
    button("平衡其余", "rebalance the unlocked grids around the edits", () =>
      model.send({ op: "rebalance" }),
    ),
  );
  const allowLabel = document.createElement("label");
  const allow = document.createElement("input");
  allow.type = "checkbox";
  allow.className = "gm-ed-allow";
  allow.checked = model.get("allow_out_of_band");
  allow.addEventListener("change", () => {
    model.set("allow_out_of_band", allow.checked);
    model.save_changes();
  });
  model.on("change:allow_out_of_band", () => (allow.checked = model.get("allow_out_of_band")));
  allowLabel.append(allow, " 允许超出户数范围");
  const actions = document.createElement("div");
  actions.className = "gm-ed-actions";
  actions.append(
    button("撤销", "undo the last edit", () => model.send({ op: "undo" })),
    button("重做", "redo", () => model.send({ op: "redo" })),
    button("校验", "validate the draft", () => model.send({ op: "validate" })),
    button("清除选择", "clear the selection", () => select([])),
  );
  const table = document.createElement("table");
  table.className = "gm-ed-touched";
  const msg = document.createElement("div");
  msg.className = "gm-ed-message";
  const problems = document.createElement("ul");
  problems.className = "gm-ed-problems";
  side.append(
    tools, selInfo, target, moveBtn, gridOps, allowLabel, actions, table, msg, problems,
  );

  function setTool(name) {
    tool = name;
    for (const [k, b] of Object.entries(toolButtons)) b.classList.toggle("on", k === name);
    if (name === "click") map.dragging.enable();
    else map.dragging.disable();
  }

  function select(ids) {
    model.set("selected", [...new Set(ids)]);
    model.save_changes();
  }

  // --- drawing ----------------------------------------------------------------
  function drawGrids() {
    const [lo, hi] = model.get("band");
    gridLayer.clearLayers();
    L.geoJSON(model.get("grids"), {
      style: (f) => ({
        color: f.properties.locked ? "#222" : "#555",
        weight: f.properties.locked ? 3 : 1,
        dashArray: f.properties.locked ? "6 4" : null,
        fillColor: bandColour(f.properties.households, lo, hi),
        fillOpacity: 0.45,
      }),
      onEachFeature: (f, layer) => {
        const p = f.properties;
        layer.bindTooltip(
          `${p.title} · ${p.households} 户${p.worker_name ? " · " + p.worker_name : ""}` +
            (p.cause ? `<br>${p.cause}` : ""),
          { sticky: true },
        );
        layer.on("click", () => {
          if (tool === "click" && model.get("selected").length) target.value = p.code;
        });
      },
    }).eachLayer((l) => gridLayer.addLayer(l));
    const opts = model.get("grids").features.map((f) => f.properties);
    const keep = target.value;
    target.replaceChildren(
      ...opts.map((p) => {
        const o = document.createElement("option");
        o.value = p.code;
        o.textContent = `${p.title} (${p.households})`;
        return o;
      }),
    );
    if (keep) target.value = keep;
  }

  function drawBuildings() {
    buildingLayer.clearLayers();
    markers.clear();
    const sel = new Set(model.get("selected"));
    for (const f of model.get("buildings").features) {
      const [lng, lat] = f.geometry.coordinates;
      const id = unitId(f.properties);
      const m = L.circleMarker([lat, lng], {
        radius: Math.min(9, 3 + Math.sqrt(f.properties.households)),
        weight: 1,
        color: "#333",
        fillColor: sel.has(id) ? "#ff7f00" : "#fff",
        fillOpacity: 0.9,
        className: "gm-ed-building",
      });
      m.feature = f;
      m.on("click", (e) => {
        if (tool !== "click") return;
        L.DomEvent.stopPropagation(e);
        const now = new Set(model.get("selected"));
        if (e.originalEvent.shiftKey) {
          if (now.has(id)) now.delete(id);
          else now.add(id);
          select([...now]);
        } else {
          select(now.has(id) && now.size === 1 ? [] : [id]);
        }
      });
      m.on("add", () => {
        m.getElement().dataset.building = id; // for tests and the inspector
      });
      m.addTo(buildingLayer);
      markers.set(id, m);
    }
  }

  function paintSelection() {
    const sel = new Set(model.get("selected"));
    for (const [id, m] of markers) m.setStyle({ fillColor: sel.has(id) ? "#ff7f00" : "#fff" });
    let n = 0;
    for (const id of sel) n += markers.get(id)?.feature.properties.households || 0;
    selInfo.textContent = `已选 ${sel.size} 栋 · ${n} 户`;
    selInfo.dataset.buildings = String(sel.size);
    selInfo.dataset.households = String(n);
  }

  function drawTouched() {
    const [lo, hi] = model.get("band");
    const rows = model.get("touched_rows");
    table.replaceChildren();
    const head = table.insertRow();
    for (const h of ["网格", "户数", "", "原因"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    for (const r of rows) {
      const tr = table.insertRow();
      tr.dataset.grid = r.code;
      tr.dataset.households = String(r.households);
      tr.insertCell().textContent = r.label;
      const c = tr.insertCell();
      c.textContent = r.status === "retired" ? "—" : String(r.households);
      c.style.background = r.status === "retired" ? "" : bandColour(r.households, lo, hi);
      tr.insertCell().textContent = r.status === "retired" ? "已撤" : r.in_band ? "✓" : "✗";
      tr.insertCell().textContent = r.cause || "";
    }
  }

  function drawMessage() {
    msg.textContent = model.get("message");
    msg.classList.toggle("error", model.get("message_kind") === "error");
    problems.replaceChildren(
      ...model.get("problems").map((p) => {
        const li = document.createElement("li");
        li.textContent = p;
        return li;
      }),
    );
    el.dataset.version = String(model.get("version"));
  }

  // --- lasso and brush --------------------------------------------------------
  let stroke = null;
  map.on("mousedown", (e) => {
    if (tool === "click") return;
    stroke = [e.latlng];
    if (tool === "brush") brushAt(e);
  });
  map.on("mousemove", (e) => {
    if (!stroke) return;
    stroke.push(e.latlng);
    if (tool === "lasso") {
      lassoLayer.clearLayers();
      L.polyline(stroke, { color: "#ff7f00", weight: 2, dashArray: "4 3" }).addTo(lassoLayer);
    } else brushAt(e);
  });
  map.on("mouseup", () => {
    if (!stroke) return;
    if (tool === "lasso" && stroke.length > 2) {
      const ring = stroke.map((ll) => [ll.lng, ll.lat]);
      const now = new Set(model.get("selected"));
      for (const [id, m] of markers) {
        const ll = m.getLatLng();
        if (inside([ll.lng, ll.lat], ring)) now.add(id);
      }
      select([...now]);
    }
    stroke = null;
    lassoLayer.clearLayers();
  });
  function brushAt(e) {
    const p = map.latLngToContainerPoint(e.latlng);
    const now = new Set(model.get("selected"));
    let grew = false;
    for (const [id, m] of markers) {
      if (!now.has(id) && map.latLngToContainerPoint(m.getLatLng()).distanceTo(p) < 18) {
        now.add(id);
        grew = true;
      }
    }
    if (grew) select([...now]);
  }

  // --- wiring -----------------------------------------------------------------
  function redraw() {
    drawGrids();
    drawBuildings();
    paintSelection();
  }
  model.on("change:grids", redraw);
  model.on("change:buildings", redraw);
  model.on("change:selected", paintSelection);
  model.on("change:touched_rows", drawTouched);
  model.on("change:message", drawMessage);
  model.on("change:problems", drawMessage);
  model.on("change:version", drawMessage);
  // a view first: Leaflet adds layers to a map only once it has one
  const b = L.geoJSON(model.get("grids")).getBounds();
  if (b.isValid()) map.fitBounds(b);
  else map.setView([30, 120], 12);
  setTool("click");
  redraw();
  drawTouched();
  drawMessage();
  // the widget may be laid out after render: let Leaflet measure again
  const ro = new ResizeObserver(() => map.invalidateSize());
  ro.observe(mapDiv);
  el.gmMap = map; // the Leaflet map, for tests and the inspector
  el.gmMarkers = markers;
  el.dataset.ready = "1";
  return () => {
    ro.disconnect();
    map.remove();
  };
}

export default { render };
