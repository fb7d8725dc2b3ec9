/* walkrun leaderboard: draws the Plotly figures and makes tables sortable and filterable.
   Everything from the database reaches the DOM as text (textContent, data attributes):
   this file never builds HTML from data. */
(function () {
  "use strict";

  function drawFigures() {
    var holder = document.getElementById("lb-figures");
    if (!holder || typeof Plotly === "undefined") return;
    var figures = JSON.parse(holder.textContent);
    // links are relative to the site root: "" on the index, "../" on pages one folder down
    // (the root this page loads our own script from)
    var own = document.querySelector('script[src$="static/leaderboard.js"]');
    var root = own && own.getAttribute("src") === "../static/leaderboard.js" ? "../" : "";
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
          window.location.href = root + "checkpoints/" + String(id) + ".html";
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

  /* One results table: all its rows (the first page is in the <tbody>, the rest arrive inert in
     <template id="<table id>-rest">, which costs no layout), sorted and filtered in memory; the
     tbody shows the first `limit` matching rows. */
  function ResultsTable(table) {
    var tbody = table.tBodies[0];
    var rest = document.getElementById(table.id + "-rest");
    var all = Array.prototype.slice.call(tbody.rows);
    if (rest) all = all.concat(Array.prototype.slice.call(rest.content.querySelectorAll("tr")));
    var pageSize = parseInt(table.getAttribute("data-page") || "0", 10) || all.length;
    var limit = pageSize, matching = all;
    var fTask = document.getElementById("f-task"), fStage = document.getElementById("f-stage");
    var fProto = document.getElementById("f-protocol");
    var fText = document.getElementById("f-text"), count = document.getElementById("row-count");
    var more = document.getElementById(table.id + "-more");
    var filtered = !!(fTask || fStage || fText || fProto) && table.id === "lb-table";

    function render() {
      var frag = document.createDocumentFragment();
      matching.slice(0, limit).forEach(function (r) { frag.appendChild(r); });
      tbody.replaceChildren(frag);
      var shown = Math.min(limit, matching.length);
      if (count && filtered) {
        count.textContent = matching.length + " of " + all.length + " rows" +
          (shown < matching.length ? " (first " + shown + " shown)" : "");
      }
      if (more) {
        more.hidden = shown >= matching.length;
        more.textContent = "show " + Math.min(pageSize, matching.length - shown) + " more rows";
      }
    }

    function filter() {
      if (!filtered) { matching = all; return; }
      var task = fTask ? fTask.value : "", stage = fStage ? fStage.value : "";
      // One protocol at a time: rows, plots and comparisons of two protocols never mix.
      var proto = fProto ? fProto.value : "";
      var words = (fText ? fText.value : "").toLowerCase().split(/\s+/).filter(Boolean);
      matching = all.filter(function (r) {
        var hay = searchText(r);
        return (!proto || r.getAttribute("data-protocol") === proto) &&
               (!task || r.getAttribute("data-task") === task) &&
               (!stage || r.getAttribute("data-stage") === stage) &&
               words.every(function (w) { return hay.indexOf(w) >= 0; });
      });
      // The benchmark filter also picks which accuracy-vs-tokens plots are shown.
      document.querySelectorAll(".plot[data-task]").forEach(function (p) {
        p.hidden = (!!task && p.getAttribute("data-task") !== task) ||
                   (!!proto && p.getAttribute("data-protocol") !== proto);
        if (!p.hidden && typeof Plotly !== "undefined" && p.data) Plotly.Plots.resize(p);
      });
      document.querySelectorAll(".run[data-protocol]").forEach(function (el) {
        el.hidden = !!proto && el.getAttribute("data-protocol") !== proto;
        var p = el.querySelector(".plot");
        if (p && !el.hidden && typeof Plotly !== "undefined" && p.data) Plotly.Plots.resize(p);
      });
      document.documentElement.setAttribute("data-protocol", proto);
    }

    var heads = table.querySelectorAll("thead th[data-key]");
    heads.forEach(function (th) {
      function sort() {
        var key = th.getAttribute("data-key"), kind = th.getAttribute("data-kind");
        // Numbers start high-to-low (best accuracy first), text A-Z; a second click flips it.
        var first = (kind === "text") ? "asc" : "desc";
        var dir = th.getAttribute("aria-sort") === (first === "asc" ? "ascending" : "descending")
          ? (first === "asc" ? "desc" : "asc") : first;
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
        var keyed = all.map(function (r, i) { return [cellValue(r, key, kind), i, r]; });
        keyed.sort(function (a, b) {
          // Missing values always last, whichever the direction; ties keep the current order.
          if (a[0] === null && b[0] === null) return a[1] - b[1];
          if (a[0] === null) return 1;
          if (b[0] === null) return -1;
          var c = (typeof a[0] === "string") ? a[0].localeCompare(b[0]) : a[0] - b[0];
          if (c === 0) return a[1] - b[1];
          return dir === "asc" ? c : -c;
        });
        all = keyed.map(function (k) { return k[2]; });
        filter();
        render();
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
    if (filtered) {
      var onChange = function () { limit = pageSize; filter(); render(); };
      [fTask, fStage, fProto].forEach(function (el) { if (el) el.addEventListener("change", onChange); });
      if (fText) fText.addEventListener("input", onChange);
    }
    if (more) more.addEventListener("click", function () { limit += pageSize; render(); });
    if (filtered && fProto) { filter(); render(); } else if (rest) render();
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

  /* A comparison page's filter: a row shows when its data-tags hold the chosen tag. */
  function tagFilters() {
    document.querySelectorAll("select.f-tags").forEach(function (sel) {
      sel.addEventListener("change", function () {
        var table = document.getElementById(sel.getAttribute("data-target"));
        if (!table) return;
        var n = 0;
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          var tags = (r.getAttribute("data-tags") || "").split(" ");
          r.hidden = !!sel.value && tags.indexOf(sel.value) < 0;
          if (!r.hidden) n += 1;
        });
        var shown = sel.parentNode.querySelector('[data-role="shown"]');
        if (shown) shown.textContent = n + " problems shown";
      });
    });
  }

  /* A page of plots with a protocol selector and no results table (analysis.html). */
  function protocolPlots() {
    var sel = document.getElementById("f-protocol");
    if (!sel || document.getElementById("lb-table")) return;
    function apply() {
      document.querySelectorAll(".plot[data-protocol]").forEach(function (p) {
        p.hidden = p.getAttribute("data-protocol") !== sel.value;
        if (!p.hidden && typeof Plotly !== "undefined" && p.data) Plotly.Plots.resize(p);
      });
    }
    sel.addEventListener("change", apply);
    apply();
  }

  /* "Δ vs base": each row of the results table against the chosen checkpoint's row of the same
     benchmark and protocol; independent-samples interval from the two standard errors. */
  function baseDeltas() {
    var sel = document.getElementById("f-base"), table = document.getElementById("lb-table");
    if (!sel || !table) return;
    var rest = document.getElementById("lb-table-rest");
    function rows() {
      var all = Array.prototype.slice.call(table.tBodies[0].rows);
      return rest ? all.concat(Array.prototype.slice.call(rest.content.querySelectorAll("tr"))) : all;
    }
    function num(r, key) {
      var td = r.querySelector('td[data-key="' + key + '"]');
      var v = td ? parseFloat(td.getAttribute("data-v")) : NaN;
      return isNaN(v) ? null : v;
    }
    function put(r, key, value, text) {
      var td = r.querySelector('td[data-key="' + key + '"]');
      if (!td) return;
      td.setAttribute("data-v", value === null ? "" : String(value));
      td.textContent = text;
    }
    sel.addEventListener("change", function () {
      var base = sel.value, all = rows(), ref = {};
      table.classList.toggle("with-base", !!base);
      all.forEach(function (r) {
        if (r.getAttribute("data-checkpoint-id") === base) {
          ref[r.getAttribute("data-task") + "|" + r.getAttribute("data-protocol")] = r;
        }
      });
      all.forEach(function (r) {
        var b = ref[r.getAttribute("data-task") + "|" + r.getAttribute("data-protocol")];
        r.classList.toggle("is-base", !!base && r.getAttribute("data-checkpoint-id") === base);
        var acc = num(r, "accuracy"), se = num(r, "accuracy_se"), tok = num(r, "mean_tokens");
        var bacc = b ? num(b, "accuracy") : null, bse = b ? num(b, "accuracy_se") : null;
        var btok = b ? num(b, "mean_tokens") : null;
        if (!b || acc === null || bacc === null) {
          put(r, "delta_base_accuracy", null, "–");
        } else {
          var d = 100 * (acc - bacc);
          var half = (se !== null && bse !== null) ? 196 * Math.sqrt(se * se + bse * bse) : null;
          put(r, "delta_base_accuracy", d, (d >= 0 ? "+" : "") + d.toFixed(1) +
              (half !== null ? " ±" + half.toFixed(1) : ""));
        }
        if (!b || tok === null || !btok) {
          put(r, "delta_base_tokens", null, "–");
        } else {
          var p = 100 * (tok / btok - 1);
          put(r, "delta_base_tokens", p, (p >= 0 ? "+" : "") + p.toFixed(1) + "%");
        }
      });
    });
  }

  function columnToggles() {
    document.querySelectorAll("input.f-columns").forEach(function (box) {
      box.addEventListener("change", function () {
        var table = document.getElementById(box.getAttribute("data-target"));
        if (table) table.classList.toggle("all-columns", box.checked);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    columnToggles();
    protocolPlots();
    baseDeltas();
    document.querySelectorAll("table.lb").forEach(function (t) { ResultsTable(t); });
    outcomeFilters();
    tagFilters();
    drawFigures();
    document.documentElement.setAttribute("data-ready", "1");
  });
})();
