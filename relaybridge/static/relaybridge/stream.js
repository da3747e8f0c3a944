/*
 * relaybridge's live stream of a thread's agent runs. Plain JavaScript, no build step.
 *
 * Attaches to every [data-relaybridge-ws] container (from {% relaybridge_stream %})
 * and ties the parts together: stream-socket.js (the WebSocket, with backoff),
 * stream-state.js (a pure reducer of the browser messages), stream-render.js (the
 * state on the page, from server-rendered fragments) and stream-page.js (the
 * comment form and refreshing the comment list). Retry/Stop forms and a
 * comment form marked data-relaybridge-comment-form are posted with fetch, so the
 * page never reloads; without this script all of them are plain form POSTs.
 *
 * Every text a person reads comes from the server: the messages carry status
 * lines, and the stream area carries the script's few own words as JSON
 * (data-relaybridge-texts), translated there.
 */
(function () {
  "use strict";
  if (window.relaybridgeStream) return;
  var streamState = window.relaybridgeStreamState;
  var StreamSocket = window.relaybridgeStreamSocket.StreamSocket;
  var socketUrl = window.relaybridgeStreamSocket.socketUrl;
  var Renderer = window.relaybridgeStreamRender.Renderer;
  var page = window.relaybridgeStreamPage;
  var csrfToken = page.csrfToken;

  var streams = [];

  function readJson(id, fallback) {
    var element = id ? document.getElementById(id) : null;
    if (!element) return fallback;
    try {
      return JSON.parse(element.textContent || "null") || fallback;
    } catch (err) {
      return fallback;
    }
  }

  // The runs the page was rendered with. Their JSON leaves out the texts, which
  // the page carries once, in each run's markup: they are read from there.
  function pageRuns(root) {
    var runs = readJson(root.getAttribute("data-relaybridge-runs"), []);
    var texts = {};
    var boxes = document.querySelectorAll("[data-relaybridge-run] [data-relaybridge-run-text]");
    for (var i = 0; i < boxes.length; i++) {
      var placeholder = boxes[i].closest("[data-relaybridge-run]");
      texts[placeholder.getAttribute("data-relaybridge-run")] = boxes[i].textContent || "";
    }
    for (var j = 0; j < runs.length; j++) {
      if (!runs[j].text && texts[runs[j].run]) runs[j].text = texts[runs[j].run];
    }
    return runs;
  }

  function Stream(root) {
    var self = this;
    this.root = root;
    this.texts = readJson(root.getAttribute("data-relaybridge-texts"), {});
    this.state = streamState.reduce(
      streamState.emptyState(),
      { type: "page", runs: pageRuns(root) },
      Date.now(),
    );
    this.renderer = new Renderer({
      root: root, document: document, texts: this.texts, csrfToken: csrfToken,
    });
    this.renderer.adopt(this.state);
    this.ticker = null;
    this.sought = {}; // comment ids fetched for because a run of theirs was not on the page
    this.update();
    this.connection = new StreamSocket({
      url: socketUrl(window.location, root.getAttribute("data-relaybridge-ws")),
      onMessage: function (message) {
        self.handle(message);
      },
      WebSocket: window.WebSocket,
      setTimeout: function (callback, delay) {
        return window.setTimeout(callback, delay);
      },
    });
    this.connection.start();
  }

  Object.defineProperty(Stream.prototype, "socket", {
    get: function () {
      return this.connection ? this.connection.current : null;
    },
  });

  Object.defineProperty(Stream.prototype, "connectedOnce", {
    get: function () {
      return this.state.snapshots > 0;
    },
  });

  Stream.prototype.handle = function (message) {
    // Messages of other parts of the page (reply.feedback: reply-actions.js).
    if (message && message.type && window.CustomEvent) {
      this.root.dispatchEvent(new CustomEvent("relaybridge:message", {
        detail: message, bubbles: true,
      }));
    }
    this.state = streamState.reduce(this.state, message, Date.now());
    this.update();
    if (this.state.refresh) requestRefresh();
  };

  Stream.prototype.update = function () {
    var result = this.renderer.render(this.state, Date.now());
    for (var i = 0; i < result.missing.length; i++) this.showMissingComment(result.missing[i]);
    if (result.refresh) requestRefresh();
    this.tick();
  };

  // A live countdown for runs waiting to be retried.
  Stream.prototype.tick = function () {
    var self = this;
    var waiting = this.renderer.tick(this.state, Date.now());
    if (waiting && !this.ticker) {
      this.ticker = window.setInterval(function () {
        self.tick();
      }, 1000);
    } else if (!waiting && this.ticker) {
      window.clearInterval(this.ticker);
      this.ticker = null;
    }
  };

  Stream.prototype.showMissingComment = function (commentId) {
    if (this.sought[commentId]) return;
    this.sought[commentId] = true;
    requestRefresh();
  };

  Stream.prototype.owns = function (runId) {
    return Object.prototype.hasOwnProperty.call(this.state.runs, runId);
  };

  // One page fetch at a time: one asked for while another runs happens right after
  // it (the running one may predate what was asked for).
  var refreshing = false;
  var refreshAgain = false;

  function requestRefresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    page.refreshPage(renderEverything).then(function () {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        requestRefresh();
      }
    });
  }

  function renderEverything() {
    for (var i = 0; i < streams.length; i++) streams[i].update();
  }

  function streamFor(runId) {
    for (var i = 0; i < streams.length; i++) {
      if (streams[i].owns(runId)) return streams[i];
    }
    return streams[0] || null;
  }

  function submitRunAction(form, event) {
    event.preventDefault();
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    var placeholder = form.closest("[data-relaybridge-run]");
    var runId = placeholder ? placeholder.getAttribute("data-relaybridge-run") : null;
    var stream = runId ? streamFor(runId) : null;
    var texts = stream ? stream.texts : {};
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      body: new FormData(form),
    })
      .then(function (response) {
        return response.json().catch(function () {
          return { ok: false };
        });
      })
      .then(function (body) {
        if (!stream) return;
        if (body && body.ok && body.run) {
          // The socket normally says so first; this covers a socket that is down.
          stream.handle(body.run);
        } else if (!body || !body.ok) {
          stream.renderer.announce((body && body.message) || texts.action_failed);
        }
      })
      .catch(function () {
        if (stream) stream.renderer.announce(texts.unreachable);
      })
      .then(function () {
        if (button && button.isConnected) button.disabled = false;
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    var runAction = form.hasAttribute("data-relaybridge-run-action");
    if (runAction && form.closest("[data-relaybridge-run]")) {
      submitRunAction(form, event);
    } else if (form.hasAttribute("data-relaybridge-comment-form") && window.fetch) {
      page.submitComment(form, event, renderEverything);
    }
  });

  function start() {
    var roots = document.querySelectorAll("[data-relaybridge-ws]");
    for (var i = 0; i < roots.length; i++) {
      if (roots[i].getAttribute("data-relaybridge-started")) continue;
      roots[i].setAttribute("data-relaybridge-started", "true");
      streams.push(new Stream(roots[i]));
    }
  }

  window.relaybridgeStream = { streams: streams, start: start };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
