"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const streamState = require(path.join(__dirname, "../../relaybridge/static/relaybridge/stream-state.js"));

const RUN = "7d1c1f3e-0000-4000-8000-000000000001";

function runState(overrides) {
  return Object.assign(
    {
      run: RUN,
      agent_id: "slow",
      agent_name: "Slow",
      comment_id: "12",
      status: "streaming",
      retry_in: null,
      code: "",
      message: "",
      text: "",
      seq: 0,
      status_text: "Slow is writing…",
      writing_text: "Slow is writing…",
      html: "<div data-relaybridge-run=\"" + RUN + "\"></div>",
    },
    overrides
  );
}

function play(messages) {
  let state = streamState.emptyState();
  const lengths = [];
  let now = 1000;
  for (const message of messages) {
    now += 50;
    state = streamState.reduce(state, message, now);
    const length = streamState.shownText(state, RUN).length;
    if (lengths[lengths.length - 1] !== length) lengths.push(length);
  }
  return { state, lengths };
}

// The browser test's story: the page streams from the first relay worker, its
// Daphne dies, it reconnects, and a second worker that took over mid-answer
// has less text in its buffer (it asked again) and numbers its deltas from 1.
test("a second worker taking over mid-answer never makes the text shrink", () => {
  const { lengths } = play([
    { type: "snapshot", runs: [runState({ status: "accepted", status_text: "Slow is thinking…" })] },
    { type: "run.delta", run: RUN, seq: 1, text: "Sorry" },
    { type: "run.delta", run: RUN, seq: 2, text: " for the wait, here" },
    // The socket is back: the new worker's buffer has only its own first delta.
    { type: "snapshot", runs: [runState({ text: "Sorry f", seq: 1 })] },
    { type: "run.delta", run: RUN, seq: 2, text: "or t" },
    { type: "run.status", ...runState({ text: "Sorry for t", seq: 2 }) },
    { type: "run.delta", run: RUN, seq: 3, text: "he wait, here is my slow" },
  ]);
  assert.deepEqual(lengths, [...lengths].sort((a, b) => a - b), `the text shrank: ${lengths}`);
  assert.equal(Math.max(...lengths), "Sorry for the wait, here is my slow".length);
});

test("a delta seen before, or after the run ended, changes nothing", () => {
  let state = streamState.reduce(streamState.emptyState(), { type: "snapshot", runs: [runState({ text: "Hi", seq: 1 })] }, 0);
  const before = JSON.stringify(state);
  const again = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 1, text: "Hi" }, 1);
  assert.equal(streamState.shownText(again, RUN), "Hi");
  assert.equal(JSON.stringify(state), before, "the reducer changed its input");
  state = streamState.reduce(state, { type: "run.status", ...runState({ status: "stopped", text: "Hi", seq: 1, status_text: "Slow was stopped." }) }, 2);
  assert.equal(state.announce, "Slow was stopped.");
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 2, text: " there" }, 3);
  assert.equal(streamState.shownText(state, RUN), "Hi");
  assert.equal(state.announce, null);
});

test("the first text of a thinking run shows the server's writing line", () => {
  let state = streamState.reduce(
    streamState.emptyState(),
    { type: "snapshot", runs: [runState({ status: "accepted", status_text: "Slow is thinking…" })] },
    0
  );
  assert.equal(state.refresh, false);
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 1, text: "Yes" }, 1);
  assert.equal(state.runs[RUN].status, "streaming");
  assert.equal(state.runs[RUN].status_text, "Slow is writing…");
  assert.equal(state.announce, "Slow is writing…");
});

test("a new stream that grows past the old text replaces it", () => {
  let state = streamState.reduce(streamState.emptyState(), { type: "snapshot", runs: [runState({ text: "Old answer", seq: 3 })] }, 0);
  state = streamState.reduce(state, { type: "run.status", ...runState({ status: "accepted", text: "", seq: 0 }) }, 1);
  assert.equal(streamState.shownText(state, RUN), "Old answer");
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 1, text: "New" }, 2);
  assert.equal(streamState.shownText(state, RUN), "Old answer");
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 2, text: " answer, longer" }, 3);
  assert.equal(streamState.shownText(state, RUN), "New answer, longer");
});

test("a reply ends the run for good and a reconnect asks for the comments", () => {
  let state = streamState.reduce(streamState.emptyState(), { type: "snapshot", runs: [runState({ text: "Done", seq: 1 })] }, 0);
  state = streamState.reduce(
    state,
    { type: "run.reply", run: RUN, comment_id: "13", html: "<p>Done</p>", fragment: "<li>r</li>", agent_id: "slow", status_text: "Slow replied." },
    1
  );
  assert.equal(state.runs[RUN].status, "replied");
  assert.deepEqual(state.replies["13"], { comment_id: "13", run: RUN, fragment: "<li>r</li>" });
  assert.equal(state.announce, "Slow replied.");
  state = streamState.reduce(state, { type: "snapshot", runs: [runState({ text: "Done", seq: 1 })] }, 2);
  assert.equal(state.runs[RUN].status, "replied", "a stale snapshot revived a replied run");
  assert.equal(state.refresh, true);
});

test("the status line counts down to a retry in the server's words", () => {
  const texts = {
    seconds: "{s} s",
    minutes: "{m} min",
    minutes_seconds: "{m} min {s} s",
    retrying_in: "retrying in {delay}",
    retrying_now: "retrying now…",
    retrying_soon: "retrying soon",
  };
  let state = streamState.reduce(
    streamState.emptyState(),
    {
      type: "snapshot",
      runs: [runState({ status: "retrying", retry_in: 75, status_text: "Slow is offline — retrying in 1 min 15 s", status_template: "Slow is offline — {countdown}" })],
    },
    10000
  );
  const run = state.runs[RUN];
  assert.equal(streamState.statusLine(run, 10000, texts), "Slow is offline — retrying in 1 min 15 s");
  assert.equal(streamState.statusLine(run, 25000, texts), "Slow is offline — retrying in 1 min");
  assert.equal(streamState.statusLine(run, 81000, texts), "Slow is offline — retrying in 4 s");
  assert.equal(streamState.statusLine(run, 85000, texts), "Slow is offline — retrying now…");
  state = streamState.reduce(state, { type: "run.error", run: RUN, code: "agent_offline", message: "Slow is offline", retry_in: null }, 86000);
  assert.equal(streamState.statusLine(state.runs[RUN], 86000, texts), "Slow is offline — retrying in 1 min 15 s");
  assert.equal(state.announce, "Slow is offline");
});

test("a person's Retry of a stopped run starts its text again", () => {
  let state = streamState.reduce(
    streamState.emptyState(),
    { type: "snapshot", runs: [runState({ status: "stopped", text: "The first half", seq: 0 })] },
    0
  );
  assert.equal(streamState.shownText(state, RUN), "The first half");
  state = streamState.reduce(state, { type: "run.status", ...runState({ status: "queued", status_text: "Slow is thinking…" }) }, 1);
  assert.equal(streamState.shownText(state, RUN), "");
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 1, text: "Anew" }, 2);
  assert.equal(streamState.shownText(state, RUN), "Anew");
  // Not so for the worker's own retries: those never make the text shorter.
  state = streamState.reduce(state, { type: "run.status", ...runState({ status: "retrying", text: "", seq: 0 }) }, 3);
  state = streamState.reduce(state, { type: "run.status", ...runState({ status: "queued", text: "", seq: 0 }) }, 4);
  assert.equal(streamState.shownText(state, RUN), "Anew");
});

// A long text comes as a state with `parts` and that many run.text messages, each
// well within a websocket frame; a part out of order or of another state is ignored.
test("a long text in parts is put together in order", () => {
  let state = streamState.reduce(
    streamState.emptyState(),
    { type: "snapshot", runs: [runState({ text: "", seq: 4, parts: 3 })] },
    0
  );
  const part = (number, text, seq = 4) => ({ type: "run.text", run: RUN, seq, part: number, text });
  state = streamState.reduce(state, part(2, "ignored: out of order"), 1);
  state = streamState.reduce(state, part(1, "one "), 2);
  state = streamState.reduce(state, part(2, "two ", 3), 3);
  state = streamState.reduce(state, part(2, "two "), 4);
  state = streamState.reduce(state, part(3, "three"), 5);
  state = streamState.reduce(state, part(4, " ignored: past the last part"), 6);
  assert.equal(streamState.shownText(state, RUN), "one two three");
  state = streamState.reduce(state, { type: "run.delta", run: RUN, seq: 5, text: " four" }, 7);
  assert.equal(streamState.shownText(state, RUN), "one two three four");
  // A page that showed the whole text and reconnects never shows less meanwhile.
  state = streamState.reduce(state, { type: "snapshot", runs: [runState({ text: "", seq: 5, parts: 1 })] }, 8);
  assert.equal(streamState.shownText(state, RUN), "one two three four");
  state = streamState.reduce(state, part(1, "one two three four", 5), 9);
  assert.equal(state.runs[RUN].text, "one two three four");
});

// An answer lost with the connection to Relay is asked again: the page keeps the old
// text through the "asking again" line, then the new attempt's text replaces it from
// its first word, and grows from there (no doubled text, no shrinking within it).
test("a new attempt's text replaces the lost answer from its first word", () => {
  const texts = [];
  let state = streamState.emptyState();
  const step = (message) => {
    state = streamState.reduce(state, message, 0);
    texts.push(streamState.shownText(state, RUN));
  };
  step({ type: "snapshot", runs: [runState({ text: "The old answer, half", seq: 4, attempt: 1 })] });
  step({ type: "run.error", run: RUN, code: "RELAYBRIDGE_CONNECTION_LOST", message: "Connection to Relay was lost — asking Slow again", retry_in: 0 });
  step({ type: "run.status", ...runState({ status: "retrying", text: "The old answer, half", seq: 4, attempt: 1, status_text: "Connection to Relay was lost — asking Slow again" }) });
  assert.equal(state.runs[RUN].status_text, "Connection to Relay was lost — asking Slow again");
  step({ type: "run.status", ...runState({ status: "accepted", text: "", seq: 0, attempt: 2 }) });
  assert.equal(texts[texts.length - 1], "The old answer, half", "the old text vanished before the new one came");
  step({ type: "run.delta", run: RUN, seq: 1, text: "A" });
  step({ type: "run.delta", run: RUN, seq: 2, text: " new answer" });
  // A late delta of the old attempt's numbering changes nothing.
  step({ type: "run.delta", run: RUN, seq: 2, text: " old" });
  assert.deepEqual(texts.slice(-3), ["A", "A new answer", "A new answer"]);
  // A worker that takes over within the same attempt still never shrinks the text.
  step({ type: "run.status", ...runState({ text: "A ne", seq: 1, attempt: 2 }) });
  assert.equal(texts[texts.length - 1], "A new answer");
});
