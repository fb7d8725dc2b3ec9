/* walkrun leaderboard: draws the Plotly figures and makes tables sortable and filterable.
   Everything from the database reaches the DOM as text (textContent, data attributes):
   this file never builds HTML from data. */
(function () {
  "use strict";

  function drawFigures() {
    var holder = document.getElementById("lb-figures");
    if (!holder || typeof Plotly === "undefined") return;
    var figures = JSON.parse(holder.textContent);
    function draw(el) {
      if (el.getAttribute("data-drawn")) return;
      var fig = figures[el.getAttribute("data-figure")];
      if (!fig) return;
      el.setAttribute("data-drawn", "1");
      Plotly.newPlot(el, fig.data, fig.layout,
                     {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]});
      el.on("plotly_click", function (ev) {
        var id = ev && ev.points && ev.points[0] && ev.points[0].customdata;
        if (id !== undefined && id !== null && /^[0-9]+$/.test(String(id))) {
          window.location.href = "checkpoints/" + String(id) + ".html";
        }
      });
    }
    var nodes = Array.prototype.slice.call(document.querySelectorAll("[data-figure]"));
    if (!("IntersectionObserver" in window)) {
      nodes.forEach(draw);
      document.documentElement.setAttribute("data-plots-drawn", "1");
      return;
    }
    // With many training runs most plots are below the fold: draw each one as it comes near
    // the viewport, so the first screen is ready without waiting for all of them.
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { io.unobserve(e.target); draw(e.target); }
      });
    }, {rootMargin: "400px 0px"});
    var top = window.innerHeight + 400;
    nodes.forEach(function (el) {
      if (!el.hidden && el.getBoundingClientRect().top < top) draw(el); else io.observe(el);
    });
    // Then the rest, one per tick, so they are there (printing, quick scrolling) without
    // blocking the first screen. Hidden ones wait for the observer (they have no size yet).
    var rest = nodes.filter(function (el) { return !el.getAttribute("data-drawn"); });
    function next() {
      var el = rest.shift();
      while (el && (el.hidden || el.getAttribute("data-drawn"))) el = rest.shift();
      if (!el) { document.documentElement.setAttribute("data-plots-drawn", "1"); return; }
      io.unobserve(el);
      draw(el);
      setTimeout(next, 30);
    }
    setTimeout(next, 30);
  }

  function cellValue(row, key, kind) {
    var td = row.querySelector('td[data-key="' + key + '"]');
    if (!td) return null;
    var v = td.getAttribute("data-v");
    if (v === null || v === "") return null;
    if (kind === "text" || kind === "date") return v.toLowerCase();
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }

  function makeSortable(table) {
    var heads = table.querySelectorAll("thead th[data-key]");
    var tbody = table.tBodies[0];
    heads.forEach(function (th) {
      function sort() {
        var key = th.getAttribute("data-key"), kind = th.getAttribute("data-kind");
        // Numbers start high-to-low (best accuracy first), text A-Z; a second click flips it.
        var first = (kind === "text") ? "asc" : "desc";
        var dir = th.getAttribute("aria-sort") === (first === "asc" ? "ascending" : "descending")
          ? (first === "asc" ? "desc" : "asc") : first;
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(tbody.rows);
        var keyed = rows.map(function (r, i) { return [cellValue(r, key, kind), i, r]; });
        keyed.sort(function (a, b) {
          // Missing values always last, whichever the direction.
          if (a[0] === null && b[0] === null) return a[1] - b[1];
          if (a[0] === null) return 1;
          if (b[0] === null) return -1;
          var c = (typeof a[0] === "string") ? a[0].localeCompare(b[0]) : a[0] - b[0];
          if (c === 0) return a[1] - b[1];
          return dir === "asc" ? c : -c;
        });
        var frag = document.createDocumentFragment();
        keyed.forEach(function (k) { frag.appendChild(k[2]); });
        tbody.appendChild(frag);
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }

  var searchCache = new WeakMap();
  function searchText(row) {
    var t = searchCache.get(row);
    if (t === undefined) {
      var a = row.querySelector('td[data-key="model"] a');
      t = (row.textContent + " " + (row.getAttribute("data-stage") || "") + " " +
           (a ? a.getAttribute("title") || "" : "")).toLowerCase();
      searchCache.set(row, t);
    }
    return t;
  }

  function makeFilterable(table) {
    var fTask = document.getElementById("f-task");
    var fStage = document.getElementById("f-stage");
    var fText = document.getElementById("f-text");
    var count = document.getElementById("row-count");
    if (!fTask && !fStage && !fText) return;
    var total = table.tBodies[0].rows.length;
    function apply() {
      var task = fTask ? fTask.value : "", stage = fStage ? fStage.value : "";
      var words = (fText ? fText.value : "").toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var hay = searchText(r);
        var ok = (!task || r.getAttribute("data-task") === task) &&
                 (!stage || r.getAttribute("data-stage") === stage) &&
                 words.every(function (w) { return hay.indexOf(w) >= 0; });
        r.hidden = !ok;
        if (ok) shown++;
      });
      if (count) count.textContent = shown + " of " + total + " rows";
      // The benchmark filter also picks which accuracy-vs-tokens plots are shown.
      document.querySelectorAll(".plot[data-task]").forEach(function (p) {
        p.hidden = !!task && p.getAttribute("data-task") !== task;
        if (!p.hidden && typeof Plotly !== "undefined" && p.data) Plotly.Plots.resize(p);
      });
    }
    [fTask, fStage].forEach(function (el) { if (el) el.addEventListener("change", apply); });
    if (fText) fText.addEventListener("input", apply);
  }

  function outcomeFilters() {
    document.querySelectorAll("select.f-outcome").forEach(function (sel) {
      sel.addEventListener("change", function () {
        var table = document.getElementById(sel.getAttribute("data-target"));
        if (!table) return;
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          r.hidden = !!sel.value && r.getAttribute("data-outcome") !== sel.value;
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.lb").forEach(function (t) { makeSortable(t); });
    var main = document.getElementById("lb-table");
    if (main) makeFilterable(main);
    outcomeFilters();
    drawFigures();
    document.documentElement.setAttribute("data-ready", "1");
  });
})();
