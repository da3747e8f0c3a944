"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const replyActions = require(path.join(__dirname, "../../relaybridge/static/relaybridge/reply-actions.js"));

const RUN = "7d1c1f3e-0000-4000-8000-000000000001";

test("Reply puts the mention at the start of the draft, once", () => {
  assert.equal(replyActions.withMention("", "athena"), "@athena ");
  assert.equal(replyActions.withMention("  and the rest?", "athena"), "@athena and the rest?");
  assert.equal(replyActions.withMention("@athena already", "athena"), "@athena already");
  assert.equal(replyActions.withMention("@Athena already", "athena"), "@Athena already");
  // Another agent first, or an id that only starts the same: the mention is added.
  assert.equal(replyActions.withMention("@klyve hi", "athena"), "@athena @klyve hi");
  assert.equal(replyActions.withMention("@athena2 hi", "athena"), "@athena @athena2 hi");
});

test("Reply never inserts what is not an agent id", () => {
  assert.equal(replyActions.withMention("draft", "<img src=x>"), "draft");
  assert.equal(replyActions.withMention("draft", ""), "draft");
});

test("a reply.feedback message sets the counts, and the pressed vote only when it is mine", () => {
  const others = replyActions.feedbackView({ type: "reply.feedback", run: RUN, up: 3, down: 1 });
  assert.deepEqual(others, { run: RUN, up: 3, down: 1, mine: null });
  const mine = replyActions.feedbackView({ type: "reply.feedback", run: RUN, up: 2, down: 2, mine: "down" });
  assert.deepEqual(mine, { run: RUN, up: 2, down: 2, mine: "down" });
});

test("a malformed feedback message changes nothing it should not", () => {
  assert.equal(replyActions.feedbackView(null), null);
  assert.equal(replyActions.feedbackView({ type: "reply.feedback" }), null);
  const odd = replyActions.feedbackView({ run: RUN, up: "x", down: -4, mine: "sideways" });
  assert.deepEqual(odd, { run: RUN, up: 0, down: 0, mine: null });
});
