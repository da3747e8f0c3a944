/*
 * The actions under an agent's reply (relaybridge/reply_actions.html). Plain
 * JavaScript, no build step; without it the same markup works as links and forms.
 *
 * - "Reply to Athena" (a[data-relaybridge-reply-to]): puts "@athena " at the start
 *   of the comment box its link points at (#comment-form), moves the focus there
 *   and lets the mention preview run, instead of reloading the page with
 *   ?reply_to=athena.
 * - The votes (form[data-relaybridge-feedback]): posted with fetch; the answer
 *   and the thread's reply.feedback page messages (which stream.js passes on as
 *   "relaybridge:message" events) update the counts in every open tab, and the
 *   pressed button in the voter's own tabs.
 *
 * Loaded as a classic script (window.relaybridgeReplyActions) and, in Node's test
 * runner, as a CommonJS module exposing the pure parts (withMention, feedbackView).
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else if (!root.relaybridgeReplyActions) {
    root.relaybridgeReplyActions = api;
    api.attach(root.document);
  }
})(this, function () {
  "use strict";

  var AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

  // The comment box's text with "@agent " at its start (once: a draft that starts
  // with the mention already keeps it, and nothing else in the draft is lost).
  function withMention(text, agentId) {
    var draft = String(text || "");
    if (!AGENT_ID.test(String(agentId || ""))) return draft;
    var lead = /^\s*@([A-Za-z0-9][A-Za-z0-9_-]*)(?=$|[^A-Za-z0-9_-])/.exec(draft);
    if (lead && lead[1].toLowerCase() === agentId.toLowerCase()) return draft;
    var rest = draft.replace(/^\s+/, "");
    return "@" + agentId + " " + rest;
  }

  // What a reply.feedback message (or the vote view's answer) changes on the page:
  // the counts always; the pressed button only when the message says whose it is.
  function feedbackView(message) {
    if (!message || typeof message.run !== "string" || !message.run) return null;
    var view = {
      run: message.run,
      up: Math.max(0, Number(message.up) || 0),
      down: Math.max(0, Number(message.down) || 0),
      mine: null,
    };
    if (message.mine === "up" || message.mine === "down") view.mine = message.mine;
    return view;
  }

  function attr(name, value) {
    return "[" + name + "=\"" + String(value).replace(/["\\]/g, "\\$&") + "\"]";
  }

  function apply(doc, message) {
    var view = feedbackView(message);
    if (!view) return 0;
    var boxes = doc.querySelectorAll(attr("data-relaybridge-reply-actions", view.run));
    for (var i = 0; i < boxes.length; i++) {
      var counts = boxes[i].querySelectorAll("[data-relaybridge-feedback-count]");
      for (var j = 0; j < counts.length; j++) {
        var which = counts[j].getAttribute("data-relaybridge-feedback-count");
        if (which === "up" || which === "down") counts[j].textContent = String(view[which]);
      }
      if (view.mine === null) continue;
      var buttons = boxes[i].querySelectorAll("[data-relaybridge-vote]");
      for (var k = 0; k < buttons.length; k++) {
        var pressed = buttons[k].getAttribute("data-relaybridge-vote") === view.mine;
        buttons[k].setAttribute("aria-pressed", pressed ? "true" : "false");
      }
    }
    return boxes.length;
  }

  function csrfToken(doc, form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input && input.value) return input.value;
    var any = doc.querySelector("input[name=csrfmiddlewaretoken]");
    if (any && any.value) return any.value;
    var match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function replyTo(doc, link, event) {
    var agentId = link.getAttribute("data-relaybridge-reply-to");
    var href = link.getAttribute("href") || "";
    var hash = href.indexOf("#");
    var form = hash === -1 ? null : doc.getElementById(href.slice(hash + 1));
    var box = form && form.querySelector("textarea");
    if (!box || !agentId) return; // the link reloads the page with ?reply_to=
    event.preventDefault();
    box.value = withMention(box.value, agentId);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    box.dispatchEvent(new Event("input", { bubbles: true })); // the mention preview
    if (form.scrollIntoView) form.scrollIntoView({ block: "nearest" });
  }

  function vote(doc, form, event) {
    var submitter = event.submitter;
    if (!submitter || !window.fetch) return; // a plain POST
    event.preventDefault();
    var body = new FormData(form);
    body.set("vote", submitter.value);
    var buttons = form.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(doc, form), Accept: "application/json" },
      body: body,
    })
      .then(function (response) {
        return response.json().catch(function () {
          return { ok: false };
        });
      })
      .then(function (answer) {
        if (answer && answer.ok) {
          apply(doc, answer);
          var note = form.querySelector("input[name=note]");
          if (note) note.value = "";
        }
      })
      .catch(function () {
        /* the counts stay as they were; the next vote or reload tries again */
      })
      .then(function () {
        for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false;
      });
  }

  function attach(doc) {
    if (!doc) return;
    doc.addEventListener("click", function (event) {
      var target = event.target;
      var link = target && target.closest ? target.closest("a[data-relaybridge-reply-to]") : null;
      if (link && !event.defaultPrevented && event.button === 0 && !event.ctrlKey &&
          !event.metaKey && !event.shiftKey) {
        replyTo(doc, link, event);
      }
    });
    doc.addEventListener("submit", function (event) {
      var form = event.target;
      if (form && form.hasAttribute && form.hasAttribute("data-relaybridge-feedback") &&
          !event.defaultPrevented) {
        vote(doc, form, event);
      }
    });
    doc.addEventListener("relaybridge:message", function (event) {
      var message = event.detail;
      if (message && message.type === "reply.feedback") apply(doc, message);
    });
  }

  return { withMention: withMention, feedbackView: feedbackView, apply: apply, attach: attach };
});
