/*
 * relaybridge's @mention autocomplete and "will call" preview. Plain ES2017, no build step.
 *
 * Attaches to every [data-relaybridge-mentions] hint (from {% relaybridge_mention_hint %})
 * and the comment box that names it in aria-describedby (else the form's textarea).
 * Typing "@" lists the agents from the cached discovery, filtered as you type; arrow
 * keys move, Enter or Tab inserts "@agent_id", Escape closes. Below the box, a preview
 * asks the server which agents the draft will call -- the same parser and limit that
 * run when the comment is saved, so code spans, e-mail addresses and look-alike
 * letters are judged exactly as they will be. Agent names and descriptions come from
 * Relay and are always inserted as text.
 */
(function () {
  "use strict";
  if (window.relaybridgeMentions) return;

  // "@" at the start of a word, then the part of an id typed so far, right before the caret.
  var TRIGGER = /(^|[\s([{"'])@([A-Za-z0-9_-]*)$/;
  var MAX_OPTIONS = 8;
  var PREVIEW_DELAY_MS = 250;

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function matches(agent, query) {
    if (!query) return true;
    var id = agent.agent_id.toLowerCase();
    var name = String(agent.name || "").toLowerCase();
    return id.indexOf(query) === 0 || name.split(/\s+/).some(function (word) {
      return word.indexOf(query) === 0;
    });
  }

  function Mentions(hint, box, agents) {
    this.hint = hint;
    this.box = box;
    this.agents = agents;
    this.form = box.form;
    this.previewUrl = hint.getAttribute("data-relaybridge-preview-url");
    this.threadKey = hint.getAttribute("data-relaybridge-thread") || "";
    this.notPermittedLabel =
      hint.getAttribute("data-relaybridge-not-permitted-label") || "not available to you";
    this.preview = hint.querySelector(".relaybridge-mention-preview");
    // {% relaybridge_follow_up thread %}: a comment without a mention may go on to
    // the agent that just answered; the preview says so, with its opt-out box.
    this.followUp = this.form ? this.form.querySelector("[data-relaybridge-follow-up]") : null;
    this.options = [];
    this.active = -1;
    this.start = -1;
    this.previewTimer = null;
    this.previewSeq = 0;

    this.list = element("ul", "relaybridge-mention-list");
    this.list.id = hint.id + "-listbox";
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", hint.getAttribute("data-relaybridge-list-label") || "");
    this.list.hidden = true;
    box.parentNode.insertBefore(this.list, box.nextSibling);
    box.setAttribute("aria-autocomplete", "list");
    box.setAttribute("aria-controls", this.list.id);
    box.setAttribute("aria-expanded", "false");

    var self = this;
    box.addEventListener("input", function () {
      self.update();
      self.schedulePreview();
    });
    box.addEventListener("click", function () { self.update(); });
    box.addEventListener("keydown", function (event) { self.onKey(event); });
    box.addEventListener("blur", function () { self.close(); });
    // Keep the focus in the box while an option is clicked.
    this.list.addEventListener("mousedown", function (event) { event.preventDefault(); });
    if (this.form) {
      this.form.addEventListener("reset", function () {
        self.close();
        window.setTimeout(function () { self.schedulePreview(); }, 0);
      });
    }
    if (box.value) this.schedulePreview();
  }

  Mentions.prototype.update = function () {
    var box = this.box;
    if (box.selectionStart !== box.selectionEnd) return this.close();
    var match = TRIGGER.exec(box.value.slice(0, box.selectionStart));
    if (!match) return this.close();
    var query = match[2].toLowerCase();
    this.start = box.selectionStart - match[2].length - 1;
    this.options = this.agents.filter(function (agent) {
      return matches(agent, query);
    }).slice(0, MAX_OPTIONS);
    if (!this.options.length) return this.close();
    this.active = 0;
    this.render();
  };

  Mentions.prototype.render = function () {
    var self = this;
    this.list.textContent = "";
    this.options.forEach(function (agent, index) {
      var option = element("li", "relaybridge-mention-option");
      option.id = self.list.id + "-" + index;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", index === self.active ? "true" : "false");
      option.setAttribute("data-agent-id", agent.agent_id);
      option.appendChild(element("strong", "", agent.name || agent.agent_id));
      option.appendChild(document.createTextNode(" "));
      option.appendChild(element("code", "", "@" + agent.agent_id));
      if (agent.not_permitted) {
        option.setAttribute("data-not-permitted", "true");
        option.appendChild(document.createTextNode(" "));
        var label = self.notPermittedLabel;
        option.appendChild(element("em", "relaybridge-mention-unavailable", label));
      } else if (agent.unavailable) {
        option.setAttribute("data-unavailable", "true");
        option.appendChild(document.createTextNode(" "));
        option.appendChild(element("em", "relaybridge-mention-unavailable", "unavailable"));
      }
      if (agent.description) {
        option.appendChild(element("span", "relaybridge-mention-description", agent.description));
      }
      option.addEventListener("click", function () { self.choose(index); });
      self.list.appendChild(option);
    });
    this.list.hidden = false;
    this.box.setAttribute("aria-expanded", "true");
    this.box.setAttribute("aria-activedescendant", this.list.id + "-" + this.active);
  };

  Mentions.prototype.close = function () {
    this.options = [];
    this.active = -1;
    this.list.hidden = true;
    this.list.textContent = "";
    this.box.setAttribute("aria-expanded", "false");
    this.box.removeAttribute("aria-activedescendant");
  };

  Mentions.prototype.onKey = function (event) {
    if (this.list.hidden || !this.options.length) return;
    var count = this.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      this.active = (this.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      this.render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      this.choose(this.active);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return;
    }
    event.preventDefault();
  };

  Mentions.prototype.choose = function (index) {
    var agent = this.options[index];
    if (!agent) return;
    var box = this.box;
    var after = box.value.slice(box.selectionStart);
    var mention = "@" + agent.agent_id + (/^\s/.test(after) ? "" : " ");
    box.value = box.value.slice(0, this.start) + mention + after;
    var caret = this.start + mention.length;
    box.setSelectionRange(caret, caret);
    box.focus();
    this.close();
    this.schedulePreview();
  };

  Mentions.prototype.schedulePreview = function () {
    var self = this;
    if (!this.preview || !this.previewUrl || !window.fetch) return;
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(function () { self.fetchPreview(); }, PREVIEW_DELAY_MS);
  };

  Mentions.prototype.fetchPreview = function () {
    var self = this;
    var text = this.box.value;
    var seq = ++this.previewSeq;
    // No "@" (nor its fullwidth form): nothing to ask the server, unless the
    // draft may be a follow-up (the server knows whether one is due).
    if (!/[@\uFF20]/.test(text) && !this.followUp) return this.showPreview(null);
    var body = new FormData();
    body.append("text", text);
    var thread = this.threadKey;
    if (!thread && this.followUp) thread = this.followUp.getAttribute("data-relaybridge-follow-up");
    if (thread) body.append("thread", thread);
    fetch(this.previewUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(this.form), Accept: "application/json" },
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (answer) {
      if (seq === self.previewSeq) self.showPreview(answer);
    }).catch(function () {
      if (seq === self.previewSeq) self.showPreview(null);
    });
  };

  Mentions.prototype.showFollowUp = function (answer) {
    var block = this.followUp;
    if (!block || !answer) return; // no answer (e.g. rate-limited): as it was
    var followUp = answer.follow_up;
    if (!followUp) {
      block.hidden = true;
      return;
    }
    var message = block.querySelector("[data-relaybridge-follow-up-message]");
    var label = block.querySelector("[data-relaybridge-follow-up-opt-out-label]");
    if (message) message.textContent = followUp.message; // the server's sentence
    if (label) label.textContent = followUp.opt_out;
    block.setAttribute("data-agent", followUp.agent_id);
    block.hidden = false;
  };

  Mentions.prototype.showPreview = function (answer) {
    var preview = this.preview;
    this.showFollowUp(answer);
    var agents = (answer && answer.agents) || [];
    if (!agents.length || !answer.message) {
      preview.textContent = "";
      preview.hidden = true;
      return;
    }
    // The sentence is the server's, in the page's language.
    preview.textContent = answer.message;
    preview.setAttribute("data-agents", agents.map(function (agent) {
      return agent.agent_id;
    }).join(" "));
    preview.hidden = false;
  };

  function boxFor(hint) {
    var boxes = document.querySelectorAll("textarea[aria-describedby]");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].getAttribute("aria-describedby").split(/\s+/).indexOf(hint.id) !== -1) {
        return boxes[i];
      }
    }
    var form = hint.closest("form");
    return form ? form.querySelector("textarea") : null;
  }

  function attachAll() {
    var attached = [];
    var hints = document.querySelectorAll("[data-relaybridge-mentions]");
    for (var i = 0; i < hints.length; i++) {
      var hint = hints[i];
      var data = document.getElementById(hint.getAttribute("data-relaybridge-mentions"));
      var box = boxFor(hint);
      if (!data || !box || box.hasAttribute("aria-controls")) continue;
      attached.push(new Mentions(hint, box, JSON.parse(data.textContent)));
    }
    return attached;
  }

  window.relaybridgeMentions = { attached: [] };
  function start() { window.relaybridgeMentions.attached = attachAll(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
