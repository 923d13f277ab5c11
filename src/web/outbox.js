// impact: the forms' outbox in the browser, for poor connections (CONTRACT.md §4.4).
//
// Progressive enhancement: without this script a form is a plain POST. With it, a form post
// that cannot reach the server (a network error, a timeout, or 503) is kept in this
// browser's localStorage with its event_id, and sent again, oldest first, when the connection
// returns, every 20 seconds while some wait, and whenever a page of the service is opened. The
// server records an event_id once, so sending again can never record it twice. One the server
// then refuses is kept with its error until the person dismisses it.
(function () {
  "use strict";
  var KEY = "impact.outbox";
  var TIMEOUT_MS = 15000;
  var RETRY_MS = 20000;
  var sending = false;

  function load() {
    try {
      var items = JSON.parse(localStorage.getItem(KEY) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return [];
    }
  }

  function store(items) {
    localStorage.setItem(KEY, JSON.stringify(items));
  }

  // The CSRF token of the page open now: a kept form carries the token of the session it was
  // filled in, which a restart or a new sign-in replaces.
  function currentCsrf() {
    var meta = document.querySelector("meta[name=csrf]");
    return meta ? meta.getAttribute("content") : "";
  }

  function fieldsOf(form) {
    var fields = [];
    new FormData(form).forEach(function (value, name) {
      fields.push([name, String(value)]);
    });
    return fields;
  }

  function idOf(fields) {
    for (var i = 0; i < fields.length; i++) {
      if (fields[i][0] === "event_id") return fields[i][1];
    }
    return "";
  }

  // Posts `fields`: "recorded" (with the page to go to), "refused" (with the server's error
  // words), "signin" (no session: sign in, then it is sent), or "unreachable".
  function post(fields) {
    var body = new URLSearchParams();
    var csrf = currentCsrf();
    fields.forEach(function (pair) {
      body.append(pair[0], pair[0] === "csrf" && csrf ? csrf : pair[1]);
    });
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    return fetch("/submit", {
      method: "POST",
      body: body,
      credentials: "same-origin",
      signal: controller.signal,
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (response) {
      clearTimeout(timer);
      var path = new URL(response.url).pathname;
      if (response.status === 503) return { outcome: "unreachable" };
      if (response.ok && path.indexOf("/actions/") === 0) {
        return { outcome: "recorded", url: response.url };
      }
      if (path === "/login") return { outcome: "signin" };
      return response.text().then(function (html) {
        return { outcome: "refused", html: html, status: response.status };
      });
    }, function () {
      clearTimeout(timer);
      return { outcome: "unreachable" };
    });
  }

  function errorsIn(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var words = [];
    page.querySelectorAll("main .error").forEach(function (node) {
      var text = node.textContent.trim();
      if (text) words.push(text);
    });
    return words.length ? words.join("; ") : "refused by the server";
  }

  // "practice: routine, outreach, MIEUX-TH-2014-01": what a kept submission is about.
  function describe(item) {
    var named = {};
    item.fields.forEach(function (pair) { named[pair[0]] = pair[1]; });
    var what = (named.type || "a submission").replace(".", ": ").replace(/_/g, " ");
    return [what, named.outcome_id, named.action_id].filter(Boolean).join(", ");
  }

  function show() {
    var box = document.getElementById("outbox");
    if (!box) return;
    var items = load();
    var waiting = items.filter(function (item) { return !item.error; });
    var refused = items.filter(function (item) { return item.error; });
    box.textContent = "";
    if (!items.length) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    if (waiting.length) {
      var line = document.createElement("span");
      line.className = "waiting";
      line.textContent = waiting.length === 1
        ? "1 submission is waiting to be sent: it goes as soon as the service can be reached."
        : waiting.length + " submissions are waiting to be sent: they go as soon as the service can be reached.";
      if (waiting.some(function (item) { return item.signin; })) {
        line.textContent += " Sign in again to send them.";
      }
      box.appendChild(line);
    }
    refused.forEach(function (item) {
      var row = document.createElement("span");
      row.className = "refused";
      row.textContent = " A kept submission (" + describe(item) + ") was refused: " + item.error + " ";
      var dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.textContent = "Dismiss";
      dismiss.addEventListener("click", function () {
        store(load().filter(function (other) { return other.event_id !== item.event_id; }));
        show();
      });
      row.appendChild(dismiss);
      box.appendChild(row);
    });
  }

  // Sends what waits, oldest first; stops at the first that cannot reach the server.
  function flush() {
    if (sending) return Promise.resolve();
    var next = load().filter(function (item) { return !item.error; })[0];
    if (!next) return Promise.resolve();
    sending = true;
    return post(next.fields).then(function (answer) {
      sending = false;
      var items = load();
      var at = items.findIndex(function (item) { return item.event_id === next.event_id; });
      if (at < 0) return;
      if (answer.outcome === "unreachable") return;
      if (answer.outcome === "signin") {
        items[at].signin = true;
        store(items);
        show();
        return;
      }
      if (answer.outcome === "recorded") {
        items.splice(at, 1);
      } else {
        items[at].error = errorsIn(answer.html);
      }
      store(items);
      show();
      return flush();
    });
  }

  // A new event id for the next report on a form whose last one was kept (version 4).
  function newEventId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function keep(fields) {
    var items = load();
    var id = idOf(fields);
    if (!items.some(function (item) { return item.event_id === id; })) {
      items.push({ event_id: id, fields: fields, kept_at: new Date().toISOString() });
      store(items);
    }
    show();
  }

  function enhance(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var fields = fieldsOf(form);
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      post(fields).then(function (answer) {
        if (button) button.disabled = false;
        if (answer.outcome === "recorded") {
          window.location.assign(answer.url);
        } else if (answer.outcome === "unreachable" || answer.outcome === "signin") {
          keep(fields);
          // The form is free for the next report, with an id of its own.
          form.reset();
          var id = form.querySelector("input[name=event_id]");
          if (id) id.value = newEventId();
        } else {
          // The form again, with the server's errors by their fields.
          var page = new DOMParser().parseFromString(answer.html, "text/html");
          var main = page.querySelector("main");
          if (main) {
            document.querySelector("main").replaceWith(main);
            start();
          }
        }
      });
    });
  }

  function start() {
    document.querySelectorAll("form.submit-form").forEach(enhance);
    show();
    flush();
  }

  window.addEventListener("online", flush);
  setInterval(flush, RETRY_MS);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
