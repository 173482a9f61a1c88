/* The map of a dataset page: Leaflet (vendored, loaded only here) draws the release's GeoJSON file or the
   DataStore table's coordinates as points, on a plain background unless HUB_MAP_TILE_URL names tiles.
   No ward boundaries are drawn: the hub has no official ward shapes (docs/portal.md). */
(function () {
  "use strict";
  var script = document.currentScript;
  var lib = script.getAttribute("data-lib");
  var css = script.getAttribute("data-css");
  var loading = null;

  function load() {
    if (window.L) return Promise.resolve();
    if (loading) return loading;
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = css;
    document.head.appendChild(link);
    loading = new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = lib;
      s.onload = resolve;
      s.onerror = reject;
      document.head.appendChild(s);
    });
    return loading;
  }

  function escapeHtml(text) {
    var div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function popup(props) {
    var rows = Object.keys(props || {}).slice(0, 8).map(function (k) {
      return "<tr><th scope=\"row\">" + escapeHtml(k) + "</th><td>" + escapeHtml(props[k]) + "</td></tr>";
    });
    return "<table class=\"popup\">" + rows.join("") + "</table>";
  }

  function features(box) {
    var url = box.getAttribute("data-url");
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      if (box.getAttribute("data-kind") === "geojson") return body;
      var lat = box.getAttribute("data-lat"), lon = box.getAttribute("data-lon");
      var records = (body.result && body.result.records) || [];
      return {
        type: "FeatureCollection",
        features: records.filter(function (r) { return r[lat] != null && r[lon] != null; }).map(function (r) {
          return { type: "Feature", properties: r, geometry: { type: "Point", coordinates: [Number(r[lon]), Number(r[lat])] } };
        })
      };
    });
  }

  function draw(box) {
    if (box.getAttribute("data-drawn")) return;
    box.setAttribute("data-drawn", "pending");
    Promise.all([load(), features(box)]).then(function (results) {
      var data = results[1];
      box.textContent = "";
      var map = L.map(box, { attributionControl: false, zoomSnap: 0.25, scrollWheelZoom: false });
      var tiles = box.getAttribute("data-tiles");
      if (tiles) L.tileLayer(tiles, { maxZoom: 19 }).addTo(map);
      var layer = L.geoJSON(data, {
        pointToLayer: function (feature, latlng) {
          return L.circleMarker(latlng, { radius: 5, color: "#0b57a4", weight: 1, fillColor: "#2a7fd4", fillOpacity: 0.8 });
        },
        style: function () { return { color: "#0b57a4", weight: 1, fillOpacity: 0.35 }; },
        onEachFeature: function (feature, l) { l.bindPopup(popup(feature.properties)); }
      }).addTo(map);
      var bounds = layer.getBounds();
      if (bounds.isValid()) map.fitBounds(bounds, { padding: [16, 16], maxZoom: 16 });
      else map.setView([10.03, 105.78], 10);
      box.setAttribute("data-drawn", "true");
      box.setAttribute("data-features", String((data.features || []).length));
    }).catch(function (error) {
      box.setAttribute("data-drawn", "failed");
      var note = document.createElement("p");
      note.className = "map-note";
      note.textContent = String(error && error.message || error);
      box.appendChild(note);
    });
  }

  function start() {
    var box = document.getElementById("map");
    if (!box) return;
    if (!("IntersectionObserver" in window)) { draw(box); return; }
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { seen.disconnect(); draw(box); } });
    }, { rootMargin: "200px" });
    seen.observe(box);
  }

  document.addEventListener("portal:preview", start);
  start();
})();
