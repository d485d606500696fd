/* flowledger web UI: live refresh, the step graph (dagre layout, SVG), rerun picking.
   No inline code anywhere (strict CSP): everything is wired here from data-* attributes. */
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var source = null;
  var timer = null; /* a refresh waiting for its turn */
  var poller = null; /* set when the server refused the stream: refresh on a timer instead */
  var opened = null; /* data-key → open, of the details in the region being replaced */
  var typed = null; /* what the reader typed in the region being replaced (see keepTyped) */
  var focusedStep = null; /* the graph's step that had focus in the region being replaced */
  /* How far each graph's box was scrolled in the region being replaced: a tall graph
     scrolls in its box, and each refresh drew it anew at the top, so the steps below
     the first screenful of a running execution could not be reached (each snapped back
     within a second). */
  var graphScroll = null;
  var inFlight = false; /* a refresh is under way: the next waits for it (never two at once) */
  var again = false; /* a change came while one was under way: refresh once more after it */
  /* The pause before a refresh: at least 300 ms (~3 a second), else twice what the last
     one took (request, swap, graph drawn) up to 10 s, so a heavy page leaves the tab
     responsive between refreshes, and one refresh stands for every change in the pause. */
  var MIN_PAUSE = 300, MAX_PAUSE = 10000;
  var pause = MIN_PAUSE;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  /* -- live updates: an SSE "change" refetches the region, rendered by the server -- */
  function startLive() {
    var region = document.getElementById("live-region");
    var url = region && region.getAttribute("data-live");
    if (!url) {
      if (source) { source.close(); source = null; }
      if (poller !== null) { clearInterval(poller); poller = null; }
      return;
    }
    if (poller !== null) return;
    if (source && source.url.indexOf(url.split("?")[0]) !== -1) return;
    if (source) source.close();
    var opening = new EventSource(url);
    source = opening;
    opening.addEventListener("change", later);
    /* keep.js hears a stream that drops or opens (is the server still there?) */
    var tell = function (what) { document.dispatchEvent(new CustomEvent("flowledger:stream", { detail: what })); };
    opening.addEventListener("open", function () { tell("open"); });
    /* A refused stream (429: this token's streams are all in use, e.g. many open tabs)
       closes for good: the page still follows the execution, by refreshing every 2 s. */
    opening.addEventListener("error", function () {
      if (opening.readyState !== EventSource.CLOSED) { tell("drop"); return; } /* the browser retries */
      if (source === opening) source = null;
      if (poller === null) poller = setInterval(later, 2000);
    });
  }

  /* A browser opens at most 6 connections to one host over HTTP/1.1, and each page's
     stream holds one: a hidden tab lets its stream go (else a 7th tab never loads) and
     catches up when it is shown again. */
  function stopLive() {
    if (source) { source.close(); source = null; }
    if (poller !== null) { clearInterval(poller); poller = null; }
    if (timer !== null) { clearTimeout(timer); timer = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { stopLive(); return; }
    refresh(); /* at once, unless one is under way (then once more after it) */
    startLive();
  });

  /* Something changed: refresh after the pause; changes meanwhile share that refresh. */
  function later() {
    if (inFlight) { again = true; return; }
    if (timer === null) timer = setTimeout(refresh, pause);
  }

  function refresh() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (inFlight) { again = true; return; }
    var region = document.getElementById("live-region");
    if (!region || !window.htmx) return;
    var url = region.getAttribute("data-refresh");
    if (!url) return;
    inFlight = true;
    again = false;
    var began = Date.now();
    var done = function () {
      inFlight = false;
      pause = Math.min(MAX_PAUSE, Math.max(MIN_PAUSE, 2 * (Date.now() - began)));
      if (again) { again = false; later(); }
    };
    /* htmx's promise settles once the answer is swapped in (and afterSwap has run) */
    window.htmx.ajax("GET", url, { target: "#live-region", swap: "outerHTML" }).then(done, done);
  }

  /* -- what the reader typed survives refreshes --
     A refresh replaces the whole region, forms included (a waiting step's form, the
     iteration picker). Each such form carries a stable data-key (a waiting form: its
     step execution's id), as details[data-key] do: before a swap, its fields' values are
     read by form key and field name; after it they are written into the new form of the
     same key (whose defaults are the same: one wait's schema), and the field that had
     focus gets its caret back. All values, not only those edited since the page loaded:
     a refused answer's page shows what was typed as the fields' defaults. A form whose key is gone (the input was given
     elsewhere) drops what was typed in it. Refreshes are not held back while someone
     types: the status, graph and events keep following the execution. */
  function readTyped(region) {
    var found = { forms: {}, focus: null };
    region.querySelectorAll("form[data-key]").forEach(function (form) {
      var fields = {};
      Array.prototype.forEach.call(form.elements, function (f) {
        if (!f.name || f.type === "hidden" || f.type === "submit") return;
        fields[f.name] = (f.type === "checkbox" || f.type === "radio") ? f.checked : f.value;
      });
      found.forms[form.getAttribute("data-key")] = fields;
    });
    var active = document.activeElement;
    var owner = active && active.form;
    if (owner && region.contains(owner) && owner.hasAttribute("data-key") && active.name) {
      var caret = null;
      try { caret = [active.selectionStart, active.selectionEnd, active.selectionDirection]; } catch (e) { caret = null; }
      found.focus = { form: owner.getAttribute("data-key"), name: active.name, caret: caret };
    }
    return found;
  }

  function keepTyped(found) {
    document.querySelectorAll("#live-region form[data-key]").forEach(function (form) {
      var key = form.getAttribute("data-key");
      var fields = found.forms[key];
      if (!fields) return;
      Object.keys(fields).forEach(function (name) {
        var f = form.elements.namedItem(name);
        if (!f || f.length !== undefined && f.tagName !== "SELECT") return; /* several of one name: not ours */
        if (f.type === "checkbox" || f.type === "radio") f.checked = fields[name]; else f.value = fields[name];
      });
      var focus = found.focus;
      if (focus && focus.form === key) {
        var field = form.elements.namedItem(focus.name);
        if (field && field.focus) {
          if (document.activeElement !== field) field.focus({ preventScroll: true });
          if (focus.caret && focus.caret[0] !== null) {
            try { field.setSelectionRange(focus.caret[0], focus.caret[1], focus.caret[2] || "none"); } catch (e) { /* not a text field */ }
          }
        }
      }
    });
  }

  /* -- the graph -- */
  /* A step's box fits its texts as drawn: their widths are measured in the page's own
     fonts (a canvas, no layout), not guessed from their lengths ("sys.loop  1200/1200"
     ran past its box). A loop's counter is sized for done = total, so the box, and the
     layout, stay the same while it counts. Names past MAX_LABEL characters are cut
     (the whole name is the box's tooltip and accessible name). */
  var MAX_LABEL = 40;
  var fonts = null;

  function shortened(text) {
    return text.length > MAX_LABEL ? text.slice(0, MAX_LABEL - 1) + "…" : text;
  }

  /* A step some iterations of which failed while it went on (continue_on_error) says how
     many: its colour is that of the others (app.views decides). */
  function subtitle(n, done) {
    return n.type + (n.isLoop && n.total !== null ? "  " + done + "/" + n.total : "") +
      (n.failedIterations ? "  · " + n.failedIterations + " failed" : "");
  }

  function childText(n) { return n.childFailed ? "failed child ↗" : "child ↗"; }

  function measurer() {
    if (fonts) return fonts;
    var probe = el("svg", { "class": "graph-svg", width: 0, height: 0, "aria-hidden": "true" }, document.body);
    probe.style.position = "absolute";
    var g = el("g", { "class": "node" }, probe);
    var font = function (node) {
      var st = window.getComputedStyle(node);
      return [st.fontStyle, st.fontWeight, st.fontSize, st.fontFamily].join(" ");
    };
    var label = font(el("text", { "class": "node-label" }, g));
    var type = font(el("text", { "class": "node-type" }, g));
    probe.remove();
    var ctx = document.createElement("canvas").getContext("2d");
    fonts = function (text, which) {
      ctx.font = which === "label" ? label : type;
      return ctx.measureText(text).width;
    };
    return fonts;
  }

  function nodeSize(n) {
    var width = measurer();
    var label = width(shortened(n.label), "label") + (n.child ? width(childText(n), "type") + 16 : 0);
    var sub = width(subtitle(n, n.total), "type");
    return { width: Math.ceil(Math.max(110, label, sub) + 22), height: n.isLoop ? 54 : 46 };
  }

  /* A graph too large to lay out (more than render.MAX_DRAWN steps) comes without its
     data, and the server says so; should dagre still fail on one, that is told too. */
  function undrawable(box, data, why) {
    var note = document.createElement("p");
    note.className = "graph-note";
    note.setAttribute("role", "note");
    note.textContent = "This graph has " + data.nodes.length + " steps, " + why + ". " +
      (data.execution
        ? "Its latest attempts are listed under Step attempts below, and all of them by `flowledger executions show " + data.execution + " --all`."
        : "Its steps are in the definition below.");
    box.appendChild(note);
  }

  /* The last layout, by the graph's shape: a live refresh brings the same graph with other
     statuses, and laying out 1,500 steps again took the tab's main thread for a second
     at each refresh; only the colours are drawn anew. */
  var layout = { shape: null, graph: null };

  function laidOut(data) {
    var sizes = data.nodes.map(nodeSize);
    var shape = JSON.stringify([data.nodes.map(function (n, i) {
      return [n.id, n.parent, n.isLoop, sizes[i].width, sizes[i].height];
    }), data.edges.map(function (e) { return [e.source, e.target, e.label]; })]);
    if (layout.shape === shape) return layout.graph;
    var g = new window.dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 36, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.nodes.forEach(function (n) {
      if (n.isLoop) g.setNode("group:" + n.id, { label: n.id, clusterLabelPos: "top", paddingTop: 18 });
    });
    data.nodes.forEach(function (n, i) {
      g.setNode(n.id, { width: sizes[i].width, height: sizes[i].height });
      if (n.isLoop) g.setParent(n.id, "group:" + n.id);
      if (n.parent) {
        g.setParent(n.isLoop ? "group:" + n.id : n.id, "group:" + n.parent);
      }
    });
    data.edges.forEach(function (e) { g.setEdge(e.source, e.target, { width: e.label ? 30 : 0, height: e.label ? 14 : 0 }); });
    window.dagre.layout(g);
    layout = { shape: shape, graph: g };
    return g;
  }

  /* What a screen reader says of a step: its id, type and status, where it is and
     what it links to (the texts drawn in its box are not read: the node is a button). */
  function spokenName(n) {
    var status = n.status + (n.isLoop && n.total !== null ? ", " + n.done + " of " + n.total + " iterations done" : "") +
      (n.failedIterations ? ", " + n.failedIterations + " iterations failed (continue_on_error)" : "");
    return "step " + n.label + " (" + n.type + ")" + (n.parent ? " in loop " + n.parent : "") + ": " + status;
  }

  function drawGraph(box) {
    var data = JSON.parse(box.getAttribute("data-graph"));
    box.textContent = "";
    if (!window.dagre || !data.nodes.length) return;
    var g;
    try {
      g = laidOut(data);
    } catch (problem) {
      undrawable(box, data, "too many to draw here (" + problem.message + ")");
      return;
    }
    var size = g.graph();
    /* A group, not an image: an image's content is one picture to a screen reader, and
       its steps (buttons) were not there at all. Lines, arrows and frames are drawing. */
    var svg = el("svg", { viewBox: "0 0 " + (size.width + 4) + " " + (size.height + 4), "class": "graph-svg",
      width: size.width + 4, height: size.height + 4, role: "group", "aria-label": "Graph of " + data.nodes.length + " steps" });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrowhead" }, marker);
    g.nodes().forEach(function (id) {
      if (id.indexOf("group:") !== 0) return;
      var c = g.node(id);
      el("rect", { x: c.x - c.width / 2, y: c.y - c.height / 2, width: c.width, height: c.height, rx: 8, "class": "group", "aria-hidden": "true" }, svg);
      var label = el("text", { x: c.x - c.width / 2 + 8, y: c.y - c.height / 2 + 13, "class": "group-label", "aria-hidden": "true" }, svg);
      label.textContent = "loop " + id.slice(6);
    });
    data.edges.forEach(function (edge) {
      var e = g.edge(edge.source, edge.target);
      var d = e.points.map(function (p, i) { return (i ? "L" : "M") + p.x + "," + p.y; }).join(" ");
      el("path", { d: d, "class": "edge " + edge.state, "marker-end": "url(#arrow)", "aria-hidden": "true" }, svg);
      if (edge.label && edge.label !== "body") {
        var t = el("text", { x: e.x, y: e.y + 4, "class": "edge-label " + edge.state, "aria-hidden": "true" }, svg);
        t.textContent = edge.label;
      }
    });
    data.nodes.forEach(function (n) {
      var p = g.node(n.id);
      var x = p.x - p.width / 2, y = p.y - p.height / 2;
      var group = el("g", { "class": "node s-" + n.status + (n.failedIterations ? " with-failures" : ""), tabindex: "0", role: "button", "data-step": n.id,
        "aria-label": spokenName(n) }, svg);
      el("rect", { x: x, y: y, width: p.width, height: p.height, rx: 6 }, group);
      if (n.label.length > MAX_LABEL) el("title", {}, group).textContent = n.label;
      var title = el("text", { x: x + 10, y: y + 18, "class": "node-label" }, group);
      title.textContent = shortened(n.label);
      var sub = el("text", { x: x + 10, y: y + 34, "class": "node-type" }, group);
      sub.textContent = subtitle(n, n.done);
      if (n.child) {
        /* Beside the button, not in it: a button's content is not read, and a link
           inside one was a second control a screen reader could not name. */
        var link = el("a", { href: "/executions/" + encodeURIComponent(n.child), "class": "child-link" + (n.childFailed ? " failed" : ""),
          "data-step": n.id, "aria-label": (n.childFailed ? "failed child execution" : "child execution") + " of step " + n.label }, svg);
        var lt = el("text", { x: x + p.width - 10, y: y + 18, "text-anchor": "end" }, link);
        lt.textContent = childText(n);
      }
      group.addEventListener("click", function () { pick(n.id, false); });
      group.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(n.id, true); }
      });
    });
    box.appendChild(svg);
    if (picked) mark(picked);
  }

  function drawGraphs() {
    document.querySelectorAll("[data-graph]").forEach(drawGraph);
  }

  /* -- picking a step: highlight it, show its attempts, make it the rerun start --
     Picked from the keyboard, focus stays on the step and the page does not scroll
     away from it; what was done is said (the graph's status line, read aloud). */
  var picked = null; /* the step picked: marked again when a refresh draws the graph anew */

  function mark(stepId) {
    document.querySelectorAll(".node.picked").forEach(function (n) { n.classList.remove("picked"); n.removeAttribute("aria-current"); });
    document.querySelectorAll('.node[data-step="' + CSS.escape(stepId) + '"]').forEach(function (n) {
      n.classList.add("picked");
      n.setAttribute("aria-current", "true");
    });
  }

  function pick(stepId, byKeyboard) {
    picked = stepId;
    mark(stepId);
    var said = ["Step " + stepId + " picked"];
    var select = document.getElementById("from_step");
    if (select) {
      var has = Array.prototype.some.call(select.options, function (o) { return o.value === stepId; });
      /* the hint of what it reuses comes from the server (the select's hx-get) */
      if (has) {
        select.value = stepId;
        if (window.htmx) window.htmx.trigger(select, "change");
        said.push("the rerun starts from it");
      }
    }
    var attempts = document.querySelectorAll('details.attempt[data-step="' + CSS.escape(stepId) + '"]');
    if (attempts.length) {
      var last = attempts[attempts.length - 1];
      last.open = true;
      if (!byKeyboard) last.scrollIntoView({ block: "nearest" });
      said.push("its latest attempt is open under Step attempts");
    } else {
      /* its attempts are not among those listed: offer to show them */
      var named = document.getElementById("attempts-step");
      if (named) {
        named.value = stepId;
        if (!byKeyboard) named.scrollIntoView({ block: "nearest" });
        said.push("its attempts are not listed: Show under Step attempts lists them");
      }
    }
    var status = document.querySelector(".graph-said");
    if (status) status.textContent = said.join("; ") + ".";
  }

  /* An attempt opened fetches its log lines into place (its link's page, as a fragment):
     only then, so a page of many attempts stays light. A refresh brings the link back,
     and reopening the attempt (kept open) fetches them again. "toggle" does not bubble:
     it is caught on its way down. */
  document.addEventListener("toggle", function (ev) {
    var d = ev.target;
    if (!d.matches || !d.matches("details.attempt") || !d.open || !window.htmx) return;
    var box = d.querySelector(".step-logs");
    var link = box && !box.hasAttribute("data-loading") && box.querySelector("a[href]");
    if (!link) return;
    box.setAttribute("data-loading", "");
    window.htmx.ajax("GET", link.getAttribute("href"), { target: box, swap: "innerHTML" });
  }, true);

  /* A refused form is shown again at the URL it posted to: put the page's own address
     back, so a reload shows the page instead of sending the form again. */
  function settleAddress() {
    var main = document.getElementById("main");
    var here = main && main.getAttribute("data-here");
    if (here && window.location.pathname !== here) window.history.replaceState(null, "", here);
  }

  function init() {
    settleAddress();
    drawGraphs();
    if (document.visibilityState !== "hidden") startLive(); /* a tab opened behind */
  }

  document.addEventListener("DOMContentLoaded", init);
  /* the server answers again (keep.js): catch up on what changed meanwhile */
  document.addEventListener("flowledger:resume", function () {
    refresh();
    if (document.visibilityState !== "hidden") startLive();
  });
  /* a refresh keeps what the reader opened or closed */
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    /* the console refused for now (429: it evaluates one expression at a time) says so */
    if (target && target.id === "console-result" && ev.detail.xhr.status === 429) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
    if (!target || target.id !== "live-region") return;
    opened = {};
    target.querySelectorAll("details[data-key]").forEach(function (d) { opened[d.getAttribute("data-key")] = d.open; });
    typed = readTyped(target);
    var on = document.activeElement;
    focusedStep = on && on.matches && on.matches(".graph-svg .node") && target.contains(on) ? on.getAttribute("data-step") : null;
    graphScroll = Array.prototype.map.call(target.querySelectorAll(".graph"), function (box) {
      return [box.scrollTop, box.scrollLeft];
    });
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    /* Only a refresh of the region draws the graph anew: another part swapped in (an
       attempt's log lines, the rerun hint, the console) redrew it too, and the step that
       had focus (picked with Enter, which opens its attempt) lost it to the page. */
    if (!ev.detail || !ev.detail.target || ev.detail.target.id !== "live-region") return;
    if (opened) {
      document.querySelectorAll("#live-region details[data-key]").forEach(function (d) {
        var key = d.getAttribute("data-key");
        if (key in opened) d.open = opened[key];
      });
      opened = null;
    }
    if (typed) { keepTyped(typed); typed = null; }
    init();
    if (graphScroll) {
      var kept = graphScroll;
      document.querySelectorAll("#live-region .graph").forEach(function (box, i) {
        if (kept[i]) { box.scrollTop = kept[i][0]; box.scrollLeft = kept[i][1]; }
      });
      graphScroll = null;
    }
    if (focusedStep !== null) {
      var node = document.querySelector('#live-region .graph-svg .node[data-step="' + CSS.escape(focusedStep) + '"]');
      if (node) node.focus({ preventScroll: true });
      focusedStep = null;
    }
  });
})();
