/*
 * relaybridge's stream renderer: puts a stream state (stream-state.js) on the page.
 *
 * It holds no markup of its own. A run's placeholder is the server's rendering of
 * relaybridge/run.html (sent in snapshot and run.status messages as `html`), a live
 * reply is the server's rendering of relaybridge/reply.html (run.reply's
 * `fragment`). The script only finds things by data attributes (the page contract,
 * see the README):
 *
 *   [data-relaybridge-run="<run id>"]            a run's placeholder; gets data-status
 *   [data-relaybridge-run-status]                 its status line (text set here)
 *   [data-relaybridge-run-text]                   its streamed text (always as text)
 *   [data-relaybridge-comment-runs="<comment>"]   where a comment's runs go
 *   [data-relaybridge-comment-id="<comment>"]     a comment on the page
 *   [data-relaybridge-comment-list]               where live replies are appended
 *
 * Loaded as a classic script (window.relaybridgeStreamRender).
 */
(function (root, factory) {
  "use strict";
  var state = root.relaybridgeStreamState ||
    (typeof require === "function" ? require("./stream-state.js") : null);
  var api = factory(state);
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.relaybridgeStreamRender = api;
  }
})(this, function (streamState) {
  "use strict";

  function attr(name, value) {
    return "[" + name + "=\"" + String(value).replace(/["\\]/g, "\\$&") + "\"]";
  }

  function Renderer(options) {
    this.root = options.root;
    this.document = options.document;
    this.texts = options.texts || {};
    this.csrfToken = options.csrfToken || function () {
      return "";
    };
    this.rendered = {}; // run id -> the html its placeholder was made from
    this.announcer = this.root.querySelector("[aria-live]");
  }

  // The page came with its runs' placeholders: they match the state it came with.
  Renderer.prototype.adopt = function (state) {
    for (var runId in state.runs) {
      if (this.placeholder(runId)) this.rendered[runId] = state.runs[runId].html;
    }
  };

  Renderer.prototype.placeholder = function (runId) {
    return this.document.querySelector(attr("data-relaybridge-run", runId));
  };

  Renderer.prototype.fragment = function (html) {
    var template = this.document.createElement("template");
    template.innerHTML = String(html).trim(); // rendered by the server from its templates
    var tokens = template.content.querySelectorAll("input[name=csrfmiddlewaretoken]");
    for (var i = 0; i < tokens.length; i++) {
      // Pushed to every page of the thread, so rendered without anyone's token.
      if (!tokens[i].value) tokens[i].value = this.csrfToken();
    }
    return template.content;
  };

  Renderer.prototype.announce = function (text) {
    if (this.announcer && text) this.announcer.textContent = text;
  };

  // Put every run and reply of `state` on the page. Returns what it could not:
  // {missing: [comment ids not on the page], refresh: true when a reply has no place}.
  Renderer.prototype.render = function (state, now) {
    var result = { missing: [], refresh: false };
    for (var runId in state.runs) this.renderRun(state.runs[runId], now, result);
    for (var commentId in state.replies) this.insertReply(state.replies[commentId], result);
    this.announce(state.announce);
    return result;
  };

  Renderer.prototype.renderRun = function (run, now, result) {
    var element = this.placeholder(run.run);
    if (run.status === "replied") {
      if (element) element.parentNode.removeChild(element);
      delete this.rendered[run.run];
      return;
    }
    if (run.html && (!element || this.rendered[run.run] !== run.html)) {
      var container = element ? null :
        this.document.querySelector(attr("data-relaybridge-comment-runs", run.comment_id));
      if (!element && !container) {
        // Posted after this page loaded (from another tab or person).
        if (run.comment_id != null) result.missing.push(String(run.comment_id));
        return;
      }
      var made = this.fragment(run.html);
      var fresh = made.querySelector(attr("data-relaybridge-run", run.run));
      if (!fresh) return;
      if (element) {
        element.parentNode.replaceChild(fresh, element);
      } else {
        container.appendChild(fresh);
      }
      element = fresh;
      this.rendered[run.run] = run.html;
    }
    if (!element) {
      if (run.comment_id != null) result.missing.push(String(run.comment_id));
      return;
    }
    if (run.status && element.getAttribute("data-status") !== run.status) {
      element.setAttribute("data-status", run.status);
    }
    this.showStatus(element, run, now);
    this.showText(element, run.shown || "");
  };

  Renderer.prototype.showStatus = function (element, run, now) {
    var line = element.querySelector("[data-relaybridge-run-status]");
    if (!line) return;
    var text = streamState.statusLine(run, now, this.texts);
    if (text && line.textContent !== text) line.textContent = text;
  };

  Renderer.prototype.showText = function (element, shown) {
    var box = element.querySelector("[data-relaybridge-run-text]");
    if (!box) return;
    var current = box.textContent;
    if (current !== shown) {
      if (current && shown.indexOf(current) === 0) {
        box.appendChild(this.document.createTextNode(shown.slice(current.length)));
      } else {
        box.textContent = shown; // streamed text is always text, never markup
      }
    }
    box.hidden = !shown;
  };

  Renderer.prototype.insertReply = function (reply, result) {
    // Idempotent: a comment on the page, however it got there, is never added again.
    if (this.document.querySelector(attr("data-relaybridge-comment-id", reply.comment_id))) return;
    var list = this.document.querySelector("[data-relaybridge-comment-list]");
    if (!list || !reply.fragment) {
      result.refresh = true;
      return;
    }
    list.appendChild(this.fragment(reply.fragment));
  };

  // Refresh the countdowns; true while some run still waits for its retry.
  Renderer.prototype.tick = function (state, now) {
    var waiting = false;
    for (var runId in state.runs) {
      var run = state.runs[runId];
      if (run.retry_at == null || streamState.ENDED.indexOf(run.status) !== -1) continue;
      waiting = waiting || run.retry_at > now - 1000;
      var element = this.placeholder(runId);
      if (element) this.showStatus(element, run, now);
    }
    return waiting;
  };

  return { Renderer: Renderer };
});
