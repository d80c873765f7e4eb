// The axme dashboard's only script: live updates with EventSource. Hand-written, no build step, no dependencies.
// Data from the server is put into the page with textContent; HTML comes only from the server's own
// (escaped) renderings of the intent page's parts.
(function () {
  "use strict";

  var TERMINAL = { COMPLETED: 1, FAILED: 1, CANCELED: 1, TIMED_OUT: 1 };

  function cell(tr, text, cls, title) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }

  function short(address) {
    if (!address) return "";
    var parts = String(address).replace(/\/+$/, "").split("/");
    return parts[parts.length - 1];
  }

  function badge(td, status) {
    td.textContent = "";
    if (!status) return;
    var span = document.createElement("span");
    span.className = "st st-" + status;
    span.setAttribute("data-status", status);
    span.textContent = status;
    td.appendChild(span);
  }

  function compact(value) {
    var text = JSON.stringify(value || {});
    return text.length > 300 ? text.slice(0, 300) + "\u2026" : text;
  }

  // The intents page: counts by status, updated whenever an intent changes.
  function liveCounts() {
    var box = document.getElementById("counts");
    if (!box || !window.EventSource) return;
    function open() {
      var es = new EventSource("/ui/live/counts");
      es.addEventListener("counts", function (m) {
        var data = JSON.parse(m.data);
        var nodes = box.querySelectorAll("[data-count]");
        for (var i = 0; i < nodes.length; i++) {
          var key = nodes[i].getAttribute("data-count");
          nodes[i].textContent = String(key === "total" ? data.total : (data.counts[key] || 0));
        }
      });
      es.addEventListener("stream.timeout", function () { es.close(); setTimeout(open, 50); });
      es.onerror = function () { es.close(); setTimeout(open, 3000); };
    }
    open();
  }

  // The intent page: new events are appended to the timeline as they happen, and the parts that change
  // (status, holder, actions, step waterfall, result) are fetched again after them.
  function liveIntent() {
    var body = document.body;
    var table = document.getElementById("timeline");
    if (!table || !window.EventSource) return;
    var tbody = table.tBodies[0];
    var id = body.getAttribute("data-intent");
    var since = parseInt(body.getAttribute("data-since") || "0", 10);
    var done = body.getAttribute("data-terminal") === "1";
    var state = document.getElementById("live-state");
    var timer = null;

    function setState(text, cls) {
      if (!state) return;
      state.textContent = text;
      state.className = "live " + (cls || "");
    }

    function refreshParts() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () {
        fetch("/ui/intents/" + encodeURIComponent(id) + "/parts", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (data) {
            if (!data) return;
            Object.keys(data.parts).forEach(function (name) {
              var el = document.getElementById("part-" + name);
              if (el) el.innerHTML = data.parts[name];  // the server's own escaped rendering
            });
          })
          .catch(function () { /* the next event tries again */ });
      }, 120);
    }

    function append(ev) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-seq", String(ev.seq));
      tr.setAttribute("data-event", ev.event_type || "");
      tr.className = "fresh";
      cell(tr, ev.seq);
      cell(tr, String(ev.at || "").slice(11, 23), "", ev.at);
      cell(tr, ev.event_type, "ev");
      badge(cell(tr, ""), ev.status);
      cell(tr, ev.waiting_reason || "");
      cell(tr, short(ev.actor), "", ev.actor);
      cell(tr, short((ev.pending_with || {}).name));
      cell(tr, compact(ev.details), "details");
      tbody.appendChild(tr);
    }

    function open() {
      if (done) { setState("finished", "off"); return; }
      setState("live", "on");
      var es = new EventSource("/ui/intents/" + encodeURIComponent(id) + "/events?since=" + since);
      es.onmessage = function (m) {
        var ev = JSON.parse(m.data);
        if (ev.seq <= since) return;
        since = ev.seq;
        append(ev);
        refreshParts();
        if (TERMINAL[ev.status]) { done = true; es.close(); setState("finished", "off"); }
      };
      es.addEventListener("stream.timeout", function (m) {
        es.close();
        var data = JSON.parse(m.data || "{}");
        if (data.next_seq > since) since = data.next_seq;
        if (TERMINAL[data.status]) { done = true; setState("finished", "off"); refreshParts(); return; }
        setTimeout(open, 50);
      });
      es.onerror = function () { es.close(); setState("reconnecting", "off"); setTimeout(open, 2000); };
    }
    open();
  }

  function start() {
    liveCounts();
    liveIntent();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
