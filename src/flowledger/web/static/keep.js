/* flowledger web UI: what the reader has on the page, kept through a lost connection and
   an ended session. No inline code (strict CSP); app.js tells of its live stream. */
"use strict";
(function () {
  /* -- the server out of reach: say so, over the stale page, until it answers again --
     A dropped stream, a failed htmx request, or a form being filled in (at most every
     5 s) asks the server (a HEAD of a static file); no answer shows the banner, with the
     time of the data shown, and asks again every 3 s. While it shows, a form is held
     back until the server answers: else Chrome's "site can't be reached" page replaced
     the page, and what was typed in it. Otherwise a form goes at once, as a click expects. */
  var offline = false, lastGood = new Date(), banner = null, asking = null, askedAt = 0;

  function clock(d) {
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (n) { return (n < 10 ? "0" : "") + n; }).join(":");
  }

  function reachable() {
    return window.fetch("/ui/static/app.css", { method: "HEAD", cache: "no-store" })
      .then(function () { return true; }, function () { return false; });
  }

  function checkServer() {
    reachable().then(function (up) { if (up) backOnline(); else showOffline(false); });
  }

  function say(said) {
    if (!banner) {
      banner = document.createElement("p");
      banner.id = "offline";
      banner.className = "offline";
      banner.setAttribute("role", "alert");
      document.body.insertBefore(banner, document.getElementById("main"));
    }
    banner.hidden = false;
    if (banner.textContent !== said) banner.textContent = said;
  }

  function showOffline(unsent) {
    say("Connection lost — showing data from " + clock(lastGood) + "; retrying…" +
      (unsent ? " Your form was not sent and is still filled in: send it again once the connection is back." : ""));
    offline = true;
    if (asking === null) asking = setTimeout(askAgain, 3000);
  }

  /* -- the server answers, but a live refresh failed (5xx: a database out of reach, a
     bug): the page stayed as it was, silently stale. Say so, with the server's words,
     and refresh again every 5 s until one comes through (its swap hides the banner). -- */
  var refused = false, retrying = null;

  function serverWords(xhr) {
    var text = xhr.responseText || "";
    try {
      var answer = JSON.parse(text);
      if (answer && answer.error && answer.error.message) return answer.error.message;
    } catch (notJson) { /* an HTML page of the UI's, or nothing */ }
    var shown = new DOMParser().parseFromString(text, "text/html").querySelector(".error");
    return shown ? shown.textContent.trim() : "";
  }

  document.addEventListener("htmx:responseError", function (ev) {
    var target = ev.detail && ev.detail.target, xhr = ev.detail && ev.detail.xhr;
    if (!target || target.id !== "live-region" || !xhr || xhr.status < 500 || offline) return;
    var words = serverWords(xhr);
    say("This page could not refresh (the server answered " + xhr.status + (words ? ": " + words : "") +
      ") — showing data from " + clock(lastGood) + "; retrying…");
    refused = true;
    if (retrying === null) {
      retrying = setTimeout(function () {
        retrying = null;
        if (refused) document.dispatchEvent(new CustomEvent("flowledger:resume"));
      }, 5000);
    }
  });

  function askAgain() {
    asking = null;
    if (offline) checkServer();
  }

  function backOnline() {
    if (!offline) return;
    offline = false;
    if (banner) banner.hidden = true;
    if (asking !== null) { clearTimeout(asking); asking = null; }
    document.dispatchEvent(new CustomEvent("flowledger:resume")); /* app.js refreshes */
  }

  function askSoon(ev) {
    var target = ev.target;
    if (offline || !target || !target.closest || !target.closest("form")) return;
    if (Date.now() - askedAt < 5000) return;
    askedAt = Date.now();
    checkServer();
  }

  document.addEventListener("focusin", askSoon);
  document.addEventListener("pointerdown", askSoon);
  document.addEventListener("flowledger:stream", function (ev) {
    if (ev.detail === "open") backOnline(); else checkServer();
  });
  document.addEventListener("htmx:sendError", function () { showOffline(false); });
  document.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail && ev.detail.target && ev.detail.target.id === "live-region") {
      lastGood = new Date();
      if (refused && !offline && banner) banner.hidden = true;
      refused = false;
    }
    backOnline();
  });

  /* -- what a form held, kept across a sign-in --
     A form posted after the session ended is refused (error.html, data-session-ended):
     its fields, kept in this tab (sessionStorage) as it was sent, are put back into the
     same form (its data-key, else its id) on the page it came from, after signing in. */
  var DRAFT = "flowledger:draft";

  function fieldsOf(form) {
    var fields = {};
    Array.prototype.forEach.call(form.elements, function (f) {
      if (!f.name || f.type === "hidden" || f.type === "submit" || f.type === "password") return;
      fields[f.name] = (f.type === "checkbox" || f.type === "radio") ? f.checked : f.value;
    });
    return fields;
  }

  function fillIn(form, fields) {
    Object.keys(fields).forEach(function (name) {
      var f = form.elements.namedItem(name);
      if (!f || f.length !== undefined && f.tagName !== "SELECT") return; /* several of one name: not ours */
      if (f.type === "checkbox" || f.type === "radio") f.checked = fields[name]; else f.value = fields[name];
    });
  }

  function readDraft() {
    try { return JSON.parse(window.sessionStorage.getItem(DRAFT) || "null"); } catch (e) { return null; }
  }

  function writeDraft(draft) {
    try {
      if (draft) window.sessionStorage.setItem(DRAFT, JSON.stringify(draft)); else window.sessionStorage.removeItem(DRAFT);
    } catch (e) { /* storage refused: nothing kept */ }
  }

  function keepDraft(form) {
    if ((form.getAttribute("method") || "").toLowerCase() !== "post") return;
    if (/\/signout$/.test(form.action)) { writeDraft(null); return; } /* not for whoever comes next */
    var key = form.getAttribute("data-key") || form.id;
    if (!key) return;
    writeDraft({ page: window.location.pathname, key: key, fields: fieldsOf(form), at: Date.now(), kept: false });
  }

  function settleDraft() {
    var draft = readDraft();
    if (!draft) return;
    if (document.querySelector("[data-session-ended]")) { /* refused for want of a session */
      draft.kept = true;
      writeDraft(draft);
      document.querySelectorAll(".kept").forEach(function (k) { k.hidden = false; });
      return;
    }
    if (window.location.pathname === "/signin") return; /* on the way back */
    writeDraft(null); /* used once, or not wanted: a form sent and answered */
    if (!draft.kept || draft.page !== window.location.pathname || Date.now() - draft.at > 3600000) return;
    var key = CSS.escape(draft.key);
    var form = document.querySelector('form[data-key="' + key + '"], form#' + key);
    if (form) fillIn(form, draft.fields);
  }

  document.addEventListener("DOMContentLoaded", settleDraft);
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    /* htmx sends its own forms (and says when it cannot: htmx:sendError) */
    if (ev.defaultPrevented || !form || form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) return;
    keepDraft(form);
    if (!offline) return;
    ev.preventDefault();
    var submitter = ev.submitter || null;
    reachable().then(function (up) {
      if (!up) { showOffline(true); return; }
      backOnline();
      if (form.requestSubmit) form.requestSubmit(submitter); else form.submit();
    });
  });
})();
