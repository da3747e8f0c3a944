/*
 * relaybridge's live stream of a thread's agent runs. Plain ES2017, no build step.
 *
 * Attaches to every [data-relaybridge-ws] container (from {% relaybridge_stream %}),
 * opens its WebSocket and keeps the run placeholders ({% relaybridge_runs %}) up to
 * date: thinking -> the text growing (always inserted as text) -> the saved,
 * server-sanitized reply comment. Retry/Stop forms and a comment form marked
 * data-relaybridge-comment-form are posted with fetch, so the page never reloads;
 * without this script all of them are plain form POSTs.
 */
(function () {
  "use strict";
  if (window.relaybridgeStream) return;

  var THINKING = ["queued", "sending", "accepted"];
  var RETRYABLE = ["failed", "stopped"];
  var STOPPABLE = ["accepted", "streaming"];
  var NO_RECONNECT = [4003, 4004];
  var BACKOFF_START_MS = 1000;
  var BACKOFF_MAX_MS = 30000;

  var streams = [];

  function has(list, value) {
    return list.indexOf(value) !== -1;
  }

  function csrfToken(form) {
    var input = (form && form.querySelector("input[name=csrfmiddlewaretoken]")) ||
      document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function cssId(value) {
    return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/"/g, '\\"');
  }

  function formatDelay(seconds) {
    var s = Math.max(0, Math.ceil(seconds));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    var rest = s % 60;
    return rest ? m + " min " + rest + " s" : m + " min";
  }

  function Stream(root) {
    this.root = root;
    this.path = root.getAttribute("data-relaybridge-ws");
    this.retryUrl = root.getAttribute("data-relaybridge-retry-url") || "";
    this.stopUrl = root.getAttribute("data-relaybridge-stop-url") || "";
    this.announcer = root.querySelector("[aria-live]");
    this.runs = {}; // run id -> state {run, agent_id, agent_name, comment_id, status, ..., text, seq}
    this.replies = {}; // comment id -> {html, agent_id, agent_name}
    this.socket = null;
    this.backoff = BACKOFF_START_MS;
    this.connectedOnce = false;
    this.closedForGood = false;
    this.ticker = null;
    this.sought = {}; // comment ids fetched for because a run of theirs was not on the page
    this.refreshing = false;
    this.refreshAgain = false;
    var dataId = root.getAttribute("data-relaybridge-runs");
    var data = dataId ? document.getElementById(dataId) : null;
    if (data) {
      try {
        var initial = JSON.parse(data.textContent || "[]");
        for (var i = 0; i < initial.length; i++) this.setState(initial[i]);
      } catch (err) {
        /* the server-rendered placeholders stay as they are */
      }
    }
    this.renderAll();
    this.connect();
  }

  Stream.prototype.connect = function () {
    var self = this;
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket;
    try {
      socket = new WebSocket(scheme + "//" + window.location.host + this.path);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      self.handle(message);
    };
    socket.onclose = function (event) {
      if (self.socket !== socket) return;
      self.socket = null;
      if (has(NO_RECONNECT, event.code)) {
        self.closedForGood = true;
        return;
      }
      self.scheduleReconnect();
    };
  };

  Stream.prototype.scheduleReconnect = function () {
    var self = this;
    var delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    window.setTimeout(function () {
      self.connect();
    }, delay);
  };

  Stream.prototype.announce = function (text) {
    if (this.announcer && text) this.announcer.textContent = text;
  };

  Stream.prototype.setState = function (state) {
    var old = this.runs[state.run] || {};
    var merged = {};
    var key;
    for (key in old) merged[key] = old[key];
    for (key in state) if (key !== "type") merged[key] = state[key];
    merged.text = state.text || "";
    merged.seq = Number(state.seq) || 0;
    merged.retryAt = state.retry_in != null ? Date.now() + state.retry_in * 1000 : null;
    this.runs[state.run] = merged;
    return merged;
  };

  Stream.prototype.handle = function (message) {
    var state;
    switch (message.type) {
      case "snapshot": {
        var reconnected = this.connectedOnce;
        this.connectedOnce = true;
        this.backoff = BACKOFF_START_MS;
        var runs = message.runs || [];
        for (var i = 0; i < runs.length; i++) this.setState(runs[i]);
        this.renderAll();
        // Runs that ended while the socket was down: the page knows their outcome.
        if (reconnected) this.refreshComments();
        break;
      }
      case "run.status": {
        var before = this.runs[message.run];
        var changed = !before || before.status !== message.status;
        state = this.setState(message);
        this.render(state);
        if (changed) this.announce(this.statusText(state));
        break;
      }
      case "run.delta": {
        state = this.runs[message.run];
        if (!state) {
          state = this.runs[message.run] = { run: message.run, status: "streaming", text: "", seq: 0 };
        }
        if (message.seq <= state.seq || has(["replied", "failed", "stopped"], state.status)) break;
        state.seq = message.seq;
        state.text += message.text;
        if (has(THINKING, state.status)) {
          // The first text is how a page learns that the agent is writing.
          state.status = "streaming";
          this.render(state);
          this.announce(this.statusText(state));
        } else {
          this.appendText(state, message.text);
        }
        break;
      }
      case "run.reply": {
        state = this.runs[message.run] || { run: message.run, agent_id: message.agent_id };
        state.status = "replied";
        this.replies[message.comment_id] = {
          html: message.html,
          agent_id: message.agent_id || state.agent_id,
          agent_name: state.agent_name || message.agent_id,
        };
        var element = this.placeholder(state.run);
        if (element) element.parentNode.removeChild(element);
        this.insertReply(message.comment_id);
        this.announce((state.agent_name || message.agent_id) + " replied.");
        break;
      }
      case "run.error": {
        state = this.runs[message.run];
        if (!state) break;
        state.code = message.code;
        state.message = message.message;
        state.retryAt = message.retry_in != null ? Date.now() + message.retry_in * 1000 : null;
        this.render(state);
        this.announce(this.statusText(state));
        break;
      }
      default:
        break;
    }
  };

  Stream.prototype.statusText = function (state) {
    var name = state.agent_name || state.agent_id || "The agent";
    // The server's message may carry its own "— retrying in 4 s"; the countdown replaces it.
    var reason = String(state.message || state.code || "").replace(/\s*—\s*retrying\b.*$/, "");
    switch (state.status) {
      case "queued":
      case "sending":
      case "accepted":
        if (state.retryAt && reason) return reason + " — " + this.countdown(state);
        return name + " is thinking…";
      case "streaming":
        return name + " is writing…";
      case "retrying":
        return (reason || name + " is unavailable") + " — " + this.countdown(state);
      case "stopped":
        return name + " was stopped" + (reason ? ": " + reason : ".");
      case "failed":
        return reason || name + " could not answer.";
      case "replied":
        return name + " replied.";
      default:
        return reason || state.status || "";
    }
  };

  Stream.prototype.countdown = function (state) {
    if (state.retryAt == null) return "retrying soon";
    var left = (state.retryAt - Date.now()) / 1000;
    return left > 0.5 ? "retrying in " + formatDelay(left) : "retrying now…";
  };

  Stream.prototype.placeholder = function (runId) {
    return document.getElementById("relaybridge-run-" + runId);
  };

  Stream.prototype.commentRuns = function (commentId) {
    if (commentId == null) return null;
    return document.querySelector('[data-relaybridge-comment="' + cssId(String(commentId)) + '"]');
  };

  Stream.prototype.actionForm = function (template, runId, label) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = template.replace("{run}", encodeURIComponent(runId));
    form.className = "relaybridge-run__action";
    var token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrfToken(null);
    var button = document.createElement("button");
    button.type = "submit";
    button.textContent = label;
    form.appendChild(token);
    form.appendChild(button);
    return form;
  };

  Stream.prototype.render = function (state) {
    var element = this.placeholder(state.run);
    if (state.status === "replied") {
      if (element) element.parentNode.removeChild(element);
      return;
    }
    if (!element) {
      var container = this.commentRuns(state.comment_id);
      if (!container) {
        // Posted after this page loaded (from another tab or person): fetch it.
        this.showMissingComment(state.comment_id);
        return;
      }
      element = document.createElement("div");
      element.id = "relaybridge-run-" + state.run;
      element.setAttribute("data-relaybridge-run", state.run);
      container.appendChild(element);
    }
    element.className = "relaybridge-run relaybridge-run--" + state.status;
    element.setAttribute("data-status", state.status);
    if (state.agent_id) element.setAttribute("data-agent", state.agent_id);
    while (element.firstChild) element.removeChild(element.firstChild);
    var status = document.createElement("p");
    status.className = "relaybridge-run__status";
    status.textContent = this.statusText(state);
    element.appendChild(status);
    if (state.text) {
      var text = document.createElement("div");
      text.className = "relaybridge-run__text";
      text.textContent = state.text;
      element.appendChild(text);
    }
    if (has(RETRYABLE, state.status) && this.retryUrl) {
      element.appendChild(this.actionForm(this.retryUrl, state.run, "Retry"));
    }
    if (has(STOPPABLE, state.status) && this.stopUrl) {
      element.appendChild(this.actionForm(this.stopUrl, state.run, "Stop"));
    }
    this.tick();
  };

  Stream.prototype.appendText = function (state, chunk) {
    var element = this.placeholder(state.run);
    if (!element) {
      this.render(state);
      return;
    }
    var text = element.querySelector(".relaybridge-run__text");
    if (!text) {
      this.render(state);
      return;
    }
    text.appendChild(document.createTextNode(chunk));
  };

  Stream.prototype.renderAll = function () {
    for (var runId in this.runs) this.render(this.runs[runId]);
    for (var commentId in this.replies) this.insertReply(commentId);
  };

  // A live countdown for runs waiting to be retried.
  Stream.prototype.tick = function () {
    var self = this;
    var waiting = false;
    for (var runId in this.runs) {
      var state = this.runs[runId];
      if (state.retryAt == null || state.status === "replied") continue;
      waiting = waiting || state.retryAt > Date.now() - 1000;
      var element = this.placeholder(runId);
      var status = element && element.querySelector(".relaybridge-run__status");
      if (status) status.textContent = this.statusText(state);
    }
    if (waiting && !this.ticker) {
      this.ticker = window.setInterval(function () {
        self.tick();
      }, 1000);
    } else if (!waiting && this.ticker) {
      window.clearInterval(this.ticker);
      this.ticker = null;
    }
  };

  Stream.prototype.insertReply = function (commentId) {
    var reply = this.replies[commentId];
    if (!reply || document.getElementById("comment-" + commentId)) return;
    var list = document.getElementById("comments") || document.querySelector(".comments");
    if (!list) return;
    var item = document.createElement("li");
    var article = document.createElement("article");
    article.className = "comment comment--agent";
    article.id = "comment-" + commentId;
    article.setAttribute("data-comment-id", commentId);
    if (reply.agent_id) article.setAttribute("data-agent", reply.agent_id);
    article.setAttribute("aria-labelledby", "comment-" + commentId + "-author");
    var header = document.createElement("header");
    header.className = "comment__meta";
    var badge = document.createElement("span");
    badge.className = "badge badge--agent";
    badge.textContent = "Agent";
    var author = document.createElement("strong");
    author.id = "comment-" + commentId + "-author";
    author.textContent = reply.agent_name || reply.agent_id || "Agent";
    var label = document.createElement("span");
    label.className = "label-ai";
    label.textContent = "AI-generated";
    header.appendChild(badge);
    header.appendChild(document.createTextNode(" "));
    header.appendChild(author);
    header.appendChild(document.createTextNode(" "));
    header.appendChild(label);
    var body = document.createElement("div");
    body.className = "comment__body comment__body--markdown";
    body.innerHTML = reply.html; // sanitized by the server (nh3 allow-list)
    var runs = document.createElement("div");
    runs.className = "relaybridge-runs";
    runs.setAttribute("data-relaybridge-comment", commentId);
    article.appendChild(header);
    article.appendChild(body);
    article.appendChild(runs);
    item.appendChild(article);
    list.appendChild(item);
  };

  // One page fetch per comment that is missing, never two fetches at once: a fetch
  // asked for while one runs happens right after it (the running one may predate
  // the comment).
  Stream.prototype.showMissingComment = function (commentId) {
    if (commentId == null || this.sought[commentId]) return;
    this.sought[commentId] = true;
    this.requestRefresh();
  };

  Stream.prototype.requestRefresh = function () {
    var self = this;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = true;
    this.refreshComments().then(function () {
      self.refreshing = false;
      if (self.refreshAgain) {
        self.refreshAgain = false;
        self.requestRefresh();
      }
    });
  };

  // Replace the comment list with the server's current one, then re-apply live state.
  Stream.prototype.refreshComments = function () {
    return refreshPage().then(function () {
      renderEverything();
    });
  };

  function renderEverything() {
    for (var i = 0; i < streams.length; i++) streams[i].renderAll();
  }

  function swapFromDocument(doc, selectors) {
    for (var i = 0; i < selectors.length; i++) {
      var selector = selectors[i].trim();
      if (!selector) continue;
      var current = document.querySelector(selector);
      var fresh = doc.querySelector(selector);
      if (current && fresh) {
        current.parentNode.replaceChild(document.importNode(fresh, true), current);
      } else if (current) {
        current.parentNode.removeChild(current);
      }
    }
  }

  function refreshSelectors() {
    var form = document.querySelector("form[data-relaybridge-comment-form]");
    var value = (form && form.getAttribute("data-relaybridge-comment-form")) || "#comments";
    return value.split(",");
  }

  function refreshPage() {
    return fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html == null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        swapFromDocument(doc, refreshSelectors());
      })
      .catch(function () {
        /* the next snapshot or reload shows the page as it is */
      });
  }

  function streamFor(element) {
    for (var i = 0; i < streams.length; i++) {
      if (streams[i].placeholder(element)) return streams[i];
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
        if (!stream || !runId) return;
        var state = stream.runs[runId];
        if (body && body.ok && state && body.status && body.status !== state.status) {
          // The socket normally says so first; this covers a socket that is down.
          state.status = body.status;
          if (typeof body.text === "string") state.text = body.text;
          stream.render(state);
          stream.announce(stream.statusText(state));
        } else if (body && !body.ok) {
          stream.announce("Could not " + (button ? button.textContent.toLowerCase() : "do that") + ": " + (body.error || "error"));
        }
      })
      .catch(function () {
        if (stream) stream.announce("Could not reach the server.");
      })
      .then(function () {
        if (button && button.isConnected) button.disabled = false;
      });
  }

  function submitComment(form, event) {
    event.preventDefault();
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    fetch(form.action || window.location.href, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "text/html" },
      body: new FormData(form),
    })
      .then(function (response) {
        var landed = new URL(response.url, window.location.href);
        if (response.redirected && landed.pathname !== window.location.pathname) {
          window.location.href = response.url; // e.g. signed out meanwhile
          return null;
        }
        return response.text().then(function (html) {
          return { status: response.status, html: html };
        });
      })
      .then(function (result) {
        if (!result) return;
        var doc = new DOMParser().parseFromString(result.html, "text/html");
        var oldAlert = form.querySelector("[role=alert]");
        if (oldAlert) oldAlert.parentNode.removeChild(oldAlert);
        if (result.status >= 400) {
          var fresh = form.id ? doc.getElementById(form.id) : null;
          var alert = fresh && fresh.querySelector("[role=alert]");
          var field = form.querySelector("textarea");
          if (alert && field) field.insertAdjacentElement("afterend", document.importNode(alert, true));
          return;
        }
        form.reset();
        swapFromDocument(doc, refreshSelectors());
        renderEverything();
      })
      .catch(function () {
        form.submit(); // fall back to the plain POST
      })
      .then(function () {
        if (button) button.disabled = false;
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if (form.classList.contains("relaybridge-run__action") && form.closest("[data-relaybridge-run]")) {
      submitRunAction(form, event);
    } else if (form.hasAttribute("data-relaybridge-comment-form") && window.fetch) {
      submitComment(form, event);
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
