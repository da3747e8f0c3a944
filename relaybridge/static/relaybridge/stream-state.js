/*
 * relaybridge's stream state: a pure reducer, no DOM, no timers, no socket.
 *
 * reduce(state, message, now) takes the state of one page's stream and one browser
 * message (DESIGN §3: snapshot, run.status, run.delta, run.reply, run.error,
 * run.text; and "page": the runs the page was rendered with, {type: "page", runs:
 * [...]}) and
 * returns the next state; the input state is never changed. `now` is a time in
 * milliseconds, used only to turn a message's `retry_in` into a moment.
 *
 * Every text a person reads comes from the server (status_text, status_template,
 * writing_text, the rendered fragments); this file only decides which to show.
 *
 * The text shown for a run never gets shorter. The stream's own text and seq follow
 * the server (a snapshot or status is authoritative about them: a second relay
 * worker that took over mid-answer may have less text and number its deltas from
 * 1 again), but what the page shows is the longer of what it showed and what the
 * stream has now. The exceptions are a person's Retry of a failed or stopped
 * run, and a run asked again because its answer was lost with a connection (a
 * state whose `attempt` is higher than the page's): the old answer stays until the
 * new one's first word arrives, then gives way to it.
 *
 * A long text never comes in one message (each stays well within a websocket
 * frame): a run state with `parts: n` has `text: ""`, and the n run.text messages
 * that follow it (`run`, `seq`, `part` from 1, `text`) carry the text in order.
 * A part that does not follow the last one of that same state is ignored.
 *
 * Loaded as a classic script (window.relaybridgeStreamState) and, in Node's test
 * runner, as a CommonJS module.
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.relaybridgeStreamState = api;
  }
})(this, function () {
  "use strict";

  var THINKING = ["queued", "sending", "accepted"];
  // Ended without a reply: only a person's Retry starts such a run again.
  var RETRYABLE = ["failed", "stopped"];
  var ENDED = ["replied", "failed", "stopped", "refused"];
  // Fields of a run state that the reducer computes itself, never copies.
  var OWN_FIELDS = ["type", "text", "seq", "retry_in", "parts", "part"];

  function has(list, value) {
    return list.indexOf(value) !== -1;
  }

  function copy(object) {
    var result = {};
    for (var key in object) {
      if (Object.prototype.hasOwnProperty.call(object, key)) result[key] = object[key];
    }
    return result;
  }

  function emptyState() {
    return { runs: {}, replies: {}, snapshots: 0, announce: null, refresh: false };
  }

  // What the page shows: never less than it showed before.
  function longer(shown, text) {
    return text.length >= shown.length ? text : shown;
  }

  // What to show once the run's text changed: the new attempt's text replaces the
  // old answer as soon as it has a word (and is complete); else never less than before.
  function shownAfter(run) {
    if (run.replacing) {
      if (!run.text || run.parts) return run.shown || "";
      run.replacing = false;
      return run.text;
    }
    return longer(run.shown || "", run.text);
  }

  function retryAt(message, now) {
    return message.retry_in != null ? now + Number(message.retry_in) * 1000 : null;
  }

  // A run state from a snapshot or a run.status merged into what the page knows.
  function merged(old, message, now) {
    var run = old ? copy(old) : { shown: "", text: "", seq: 0 };
    for (var key in message) {
      if (Object.prototype.hasOwnProperty.call(message, key) && !has(OWN_FIELDS, key)) {
        run[key] = message[key];
      }
    }
    if (old && old.status === "replied") run.status = "replied"; // a late status never revives it
    if (old && has(RETRYABLE, old.status) && !has(ENDED, run.status)) {
      // Someone pressed Retry: a new answer, not more of the old one.
      run.shown = "";
    }
    if (old && old.attempt != null && message.attempt != null &&
        Number(message.attempt) > Number(old.attempt)) {
      // Asked again: the old text stays until the new answer's first word.
      run.replacing = true;
    }
    run.text = String(message.text || "");
    run.seq = Number(message.seq) || 0;
    run.parts = Number(message.parts) || 0; // run.text messages to come
    run.part = 0;
    run.shown = shownAfter(run);
    run.retry_at = retryAt(message, now);
    return run;
  }

  function withRun(state, run) {
    var next = copy(state);
    next.runs = copy(state.runs);
    next.runs[run.run] = run;
    return next;
  }

  // A snapshot (from the socket) or the runs the page was rendered with ("page").
  function onSnapshot(state, message, now) {
    var next = copy(state);
    next.runs = copy(state.runs);
    var runs = message.runs || [];
    for (var i = 0; i < runs.length; i++) {
      next.runs[runs[i].run] = merged(state.runs[runs[i].run], runs[i], now);
    }
    if (message.type !== "snapshot") return next;
    next.snapshots = state.snapshots + 1;
    // A snapshot after the first one means the socket was down: runs that ended
    // meanwhile are not in it, and the comment list shows their outcome.
    next.refresh = state.snapshots > 0;
    return next;
  }

  function onStatus(state, message, now) {
    var before = state.runs[message.run];
    var run = merged(before, message, now);
    var next = withRun(state, run);
    if (!before || before.status !== run.status) next.announce = run.status_text || null;
    return next;
  }

  function onDelta(state, message) {
    var old = state.runs[message.run];
    // Stopped: Relay cannot cancel, so tokens keep coming; they change nothing.
    if (old && has(ENDED, old.status)) return state;
    var run = old ? copy(old) :
      { run: message.run, status: "streaming", text: "", seq: 0, shown: "" };
    var seq = Number(message.seq) || 0;
    if (seq <= run.seq) return state; // already had it
    run.seq = seq;
    run.text = run.text + String(message.text || "");
    run.shown = shownAfter(run);
    var next = withRun(state, run);
    if (has(THINKING, run.status)) {
      // The first text is how a page learns that the agent is writing.
      run.status = "streaming";
      if (run.writing_text) run.status_text = run.writing_text;
      run.status_template = "";
      run.retry_at = null;
      next.announce = run.status_text || null;
    }
    return next;
  }

  // A part of the text of the run state sent just before, in order.
  function onText(state, message) {
    var old = state.runs[message.run];
    if (!old || !old.parts) return state;
    var part = Number(message.part) || 0;
    if ((Number(message.seq) || 0) !== old.seq || part !== old.part + 1) return state;
    var run = copy(old);
    run.part = part;
    if (part >= run.parts) run.parts = 0;
    run.text = run.text + String(message.text || "");
    run.shown = shownAfter(run);
    return withRun(state, run);
  }

  function onReply(state, message) {
    var old = state.runs[message.run];
    var run = old ? copy(old) : { run: message.run, text: "", seq: 0, shown: "" };
    run.status = "replied";
    run.agent_id = run.agent_id || message.agent_id;
    var next = withRun(state, run);
    next.replies = copy(state.replies);
    next.replies[message.comment_id] = {
      comment_id: String(message.comment_id),
      run: message.run,
      fragment: message.fragment || "",
    };
    next.announce = message.status_text || null;
    return next;
  }

  function onError(state, message, now) {
    var old = state.runs[message.run];
    if (!old) return state;
    var run = copy(old);
    run.code = message.code;
    run.message = message.message;
    run.retry_at = retryAt(message, now);
    var next = withRun(state, run);
    next.announce = message.message || null;
    return next;
  }

  function reduce(state, message, now) {
    var base = copy(state);
    base.announce = null;
    base.refresh = false;
    switch (message && message.type) {
      case "snapshot":
      case "page":
        return onSnapshot(base, message, now);
      case "run.status":
        return onStatus(base, message, now);
      case "run.delta":
        return onDelta(base, message);
      case "run.text":
        return onText(base, message);
      case "run.reply":
        return onReply(base, message);
      case "run.error":
        return onError(base, message, now);
      default:
        return base;
    }
  }

  function shownText(state, runId) {
    var run = state.runs[runId];
    return run ? run.shown : "";
  }

  function fill(pattern, values) {
    return String(pattern || "").replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  // "4 s", "2 min", "1 min 30 s" in the server's words (texts from the stream area).
  function formatDelay(seconds, texts) {
    var total = Math.max(0, Math.ceil(seconds));
    var minutes = Math.floor(total / 60);
    var rest = total % 60;
    if (!minutes) return fill(texts.seconds, { s: rest });
    if (!rest) return fill(texts.minutes, { m: minutes });
    return fill(texts.minutes_seconds, { m: minutes, s: rest });
  }

  function countdown(run, now, texts) {
    if (run.retry_at == null) return String(texts.retrying_soon || "");
    var left = (run.retry_at - now) / 1000;
    if (left <= 0.5) return String(texts.retrying_now || "");
    return fill(texts.retrying_in, { delay: formatDelay(left, texts) });
  }

  // The status line of a run at `now`: the server's text, with a live countdown.
  function statusLine(run, now, texts) {
    var template = run.status_template || "";
    if (!template || run.retry_at == null) return String(run.status_text || "");
    var at = template.lastIndexOf("{countdown}");
    if (at === -1) return String(run.status_text || "");
    var after = template.slice(at + "{countdown}".length);
    return template.slice(0, at) + countdown(run, now, texts) + after;
  }

  return {
    ENDED: ENDED,
    emptyState: emptyState,
    reduce: reduce,
    shownText: shownText,
    formatDelay: formatDelay,
    statusLine: statusLine,
  };
});
