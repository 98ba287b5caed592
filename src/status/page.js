// goaround /status: fetches /status.json every two seconds and rebuilds the page with the
// same markup html.rs writes. Values only ever go in through textContent (and attribute
// setters), never as markup. When a fetch fails the last data stays, dimmed, under a banner.
(function () {
  "use strict";
  var JSON_URL = "/status.json";
  var EVERY_MS = 2000;
  var TIMEOUT_MS = 5000;
  var FAVICON = ["#17753a", "#935200", "#b42318"];
  var COLUMNS = [["Backend", false], ["State", false], ["Last check", false],
    ["In flight", true], ["Req/s", true], ["Requests", true], ["Errors", false],
    ["p50", true], ["p99", true], ["Received / sent", true]];
  var dataAt = new Date();
  var failingSince = null;
  var failures = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) { parent.appendChild(arguments[i]); }
    return parent;
  }

  function replaceChildren(parent, children) {
    while (parent.firstChild) { parent.removeChild(parent.firstChild); }
    children.forEach(function (c) { parent.appendChild(c); });
  }

  // Twins of format.rs: same rounding (half away from zero), same text.
  function round(x, d) { var p = Math.pow(10, d); return Math.round(x * p) / p; }
  function fixed(x, d) { return round(x, d).toFixed(d); }
  function count(n) {
    var s = String(n), at = s.length % 3 || 3, out = s.slice(0, at);
    for (; at < s.length; at += 3) { out += "," + s.slice(at, at + 3); }
    return out;
  }
  function bytes(n) {
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if (n < 1024) { return n + "\u00a0B"; }
    var v = n / 1024, u = 0;
    while (v >= 1024 && u + 1 < units.length) { v /= 1024; u++; }
    return fixed(v, 1) + "\u00a0" + units[u];
  }
  function rate(x) { return fixed(round(x || 0, 2), 1); }
  function ms(x) {
    if (x === null || x === undefined || !isFinite(x)) { return "\u2013"; }
    x = round(x, 3);
    if (x < 1) { return fixed(x, 2) + "\u00a0ms"; }
    if (x < 100) { return fixed(x, 1) + "\u00a0ms"; }
    if (x < 10000) { return fixed(x, 0) + "\u00a0ms"; }
    return fixed(x / 1000, 1) + "\u00a0s";
  }
  function duration(secs) {
    var d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
    var m = Math.floor(secs / 60) % 60, s = secs % 60;
    if (d > 0) { return d + "d " + h + "h"; }
    if (h > 0) { return h + "h " + m + "m"; }
    if (m > 0) { return m + "m " + s + "s"; }
    return s + "s";
  }
  function percent(r) {
    if (r === null || r === undefined || !isFinite(r)) { return "\u2013"; }
    return fixed(round(r, 4) * 100, 1) + "%";
  }
  function commandLine(flags) {
    var out = "goaround";
    flags.forEach(function (f) {
      out += " ";
      if (/^[A-Za-z0-9\-_.,:\/=@%+]+$/.test(f)) { out += f; }
      else { out += "'" + f.replace(/'/g, "'\\''") + "'"; }
    });
    return out;
  }
  function clock(d) {
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function allBackends(s) {
    var all = [];
    s.upstreams.forEach(function (u) { all = all.concat(u.backends); });
    return all;
  }
  function upCount(list) { return list.filter(function (b) { return b.state === "up"; }).length; }

  // 2 when a backend is down or none is left to serve (all pending is only starting up),
  // 1 when some are draining or pending, 0 when all are up: as html.rs colours the tile.
  function health(s) {
    var all = allBackends(s), n = {};
    all.forEach(function (b) { n[b.state] = (n[b.state] || 0) + 1; });
    if (n.down || (all.length > 0 && upCount(all) === 0 && !n.pending)) { return 2; }
    return (n.draining || n.pending) ? 1 : 0;
  }

  function tile(cls, key, value, note) {
    return add(el("div", cls), el("span", "k", key), el("span", "v", value), el("span", "s", note));
  }

  function totals(s) {
    var t = s.totals, all = allBackends(s), up = upCount(all), n = {};
    all.forEach(function (b) { n[b.state] = (n[b.state] || 0) + 1; });
    var notes = [];
    ["down", "draining", "pending"].forEach(function (w) { if (n[w]) { notes.push(n[w] + " " + w); } });
    var note = all.length === 0 ? "none configured" : notes.length === 0 ? "all up" : notes.join(" \u00b7 ");
    var tiles = [
      tile(["tile", "tile warn", "tile bad"][health(s)], "Backends up", up + " / " + all.length, note),
      tile("tile", "Requests/s", rate(t.rps_10s), "last 10 s"),
      tile("tile", "Requests", count(t.requests), "since start"),
      tile("tile", "Connections", count(t.client_connections), "open now"),
      tile("tile", "Tunnels", count(t.tunnels), "WebSocket")
    ];
    if (t.cache) {
      var c = t.cache;
      tiles.push(tile("tile", "Cache hits", percent(c.hit_ratio),
        count(c.hits) + " hits \u00b7 " + count(c.misses) + " misses"));
      tiles.push(tile("tile", "Cache size", bytes(c.bytes), count(c.entries) + " entries"));
    } else {
      tiles.push(tile("tile", "Cache", "off", "-cache not set"));
    }
    tiles.push(tile("tile", "Uptime", duration(s.uptime_secs), "since start"));
    return tiles;
  }

  function cell(cls, label, text) {
    var td = el("td", cls, text);
    td.setAttribute("data-label", label);
    return td;
  }

  function backendRow(b, checked) {
    var tr = el("tr", "backend st-" + b.state);
    tr.setAttribute("data-url", b.url);
    var th = el("th", "url");
    th.setAttribute("scope", "row");
    th.setAttribute("data-label", "Backend");
    add(th, el("span", "u", b.url));
    if (b.weight !== null && b.weight !== undefined) { add(th, el("span", "w", "weight " + b.weight)); }

    var state = cell("state", "State");
    add(state, el("span", "badge " + b.state, b.state));
    if (b.since_change_secs !== null && b.since_change_secs !== undefined) {
      add(state, el("span", "since", "for " + duration(b.since_change_secs)));
    }
    if (b.reason !== null && b.reason !== undefined) { add(state, el("span", "reason", b.reason)); }

    var check = cell("check", "Last check");
    var c = b.last_check;
    if (!c) {
      add(check, el("span", "muted", checked ? "none yet" : "off \u00b7 passive health only"));
    } else {
      add(check,
        el("span", c.ok ? "res ok" : "res fail", c.ok ? "\u2713 passed" : "\u2717 failed"),
        el("span", "ago", duration(c.ago_secs) + " ago \u00b7 " + ms(c.duration_ms)));
      var msg = el("span", "msg", c.message);
      msg.title = c.message;
      add(check, msg);
    }

    var inflight = cell("num inflight", "In flight");
    var load = b.limit > 0 ? Math.floor((Math.min(b.in_flight, b.limit) * 100 + Math.floor(b.limit / 2)) / b.limit) : 0;
    var fill = el("span");
    fill.setAttribute("style", "width:" + load + "%");
    add(inflight, el("span", null, count(b.in_flight) + " / " + count(b.limit)),
      add(el("span", load >= 80 ? "bar full" : "bar"), fill));

    var errors = cell("errors", "Errors"), e = b.errors, any = false;
    [["5xx", e.http_5xx], ["connect", e.connect], ["timeout", e.timeout],
      ["reset", e.reset], ["protocol", e.protocol]].forEach(function (k) {
      if (k[1] > 0) { any = true; add(errors, el("span", "err", k[0] + " " + count(k[1]))); }
    });
    if (!any) { add(errors, el("span", "muted", "none")); }

    return add(tr, th, state, check, inflight,
      cell("num", "Req/s", rate(b.rps_10s)),
      cell("num", "Requests", count(b.requests)),
      errors,
      cell("num", "p50", ms(b.latency_p50_ms)),
      cell("num", "p99", ms(b.latency_p99_ms)),
      cell("num", "Received / sent", bytes(b.bytes_in) + " / " + bytes(b.bytes_out)));
  }

  function upstream(u) {
    var section = el("section", "upstream");
    var h2 = add(el("h2", null, u.name + " "),
      el("span", "meta", u.balancer + " \u00b7 " + upCount(u.backends) + " of " + u.backends.length + " up"));
    var head = el("tr");
    COLUMNS.forEach(function (col, i) {
      var th = el("th", i === 0 ? "url" : (col[1] ? "num" : null), col[0]);
      th.setAttribute("scope", "col");
      add(head, th);
    });
    var tbody = el("tbody");
    if (u.backends.length === 0) {
      var td = el("td", null, "No backends: give them with -b or through the control socket.");
      td.colSpan = COLUMNS.length;
      add(tbody, add(el("tr", "empty"), td));
    }
    var checked = u.health_check !== null && u.health_check !== undefined;
    u.backends.forEach(function (b) { add(tbody, backendRow(b, checked)); });
    var table = add(el("table"), add(el("thead"), head), tbody);
    return add(section, h2, add(el("div", "scroll"), table));
  }

  // Builds everything first, so a surprise in the data leaves the page as it was.
  function render(s) {
    var tiles = totals(s);
    var sections = s.upstreams.map(upstream);
    var all = allBackends(s), up = upCount(all);
    replaceChildren($("totals"), tiles);
    replaceChildren($("upstreams"), sections);
    $("flags").textContent = commandLine(s.flags);
    $("version").textContent = s.version;
    $("build").textContent = s.build_static ? "static build" : "dynamically linked";
    document.title = "goaround \u00b7 " + up + "/" + all.length + " up";
    favicon(FAVICON[health(s)]);
  }

  function favicon(color) {
    var link = $("favicon"), canvas = document.createElement("canvas");
    var g = canvas.getContext && canvas.getContext("2d");
    if (!link || !g) { return; }
    canvas.width = canvas.height = 32;
    g.fillStyle = color;
    g.beginPath();
    g.arc(16, 16, 13, 0, 2 * Math.PI);
    g.fill();
    link.setAttribute("href", canvas.toDataURL("image/png"));
  }

  function setStale(stale) {
    ["totals", "upstreams"].forEach(function (id) { $(id).classList.toggle("stale", stale); });
  }

  function succeeded() {
    dataAt = new Date();
    failures = 0;
    failingSince = null;
    $("live").className = "live ok";
    $("live-text").textContent = "Live \u00b7 updated " + clock(dataAt);
    $("alert").hidden = true;
    setStale(false);
  }

  function failed(why) {
    failures++;
    if (!failingSince) { failingSince = new Date(); }
    $("live").className = "live fail";
    $("live-text").textContent = "Not updating \u00b7 data from " + clock(dataAt);
    var alert = $("alert");
    alert.textContent = "Cannot reach " + JSON_URL + " since " + clock(failingSince) + " (" +
      failures + (failures === 1 ? " failed try" : " failed tries") + "; last: " + why +
      "). goaround may be restarting. The figures below are from " + clock(dataAt) +
      " and stay until it answers again.";
    alert.hidden = false;
    setStale(true);
  }

  function tick() {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) { controller.abort(); } }, TIMEOUT_MS);
    fetch(JSON_URL, { cache: "no-store", signal: controller ? controller.signal : undefined })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (s) {
        if (!s || !Array.isArray(s.upstreams) || !s.totals) { throw new Error("unexpected JSON"); }
        render(s);
        succeeded();
      })
      .catch(function (e) {
        failed(e && e.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s"
          : (e && e.message) || "network error");
      })
      .then(function () {
        clearTimeout(timer);
        setTimeout(tick, EVERY_MS);
      });
  }

  // A browser without fetch keeps the server's snapshot and its "reload to update".
  if (!window.fetch) { return; }
  succeeded();
  var first = $("totals").querySelector(".tile");
  favicon(FAVICON[first && first.classList.contains("bad") ? 2 : first && first.classList.contains("warn") ? 1 : 0]);
  setTimeout(tick, EVERY_MS);
})();
