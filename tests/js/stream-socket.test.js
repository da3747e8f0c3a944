"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const { StreamSocket, socketUrl } = require(path.join(__dirname, "../../relaybridge/static/relaybridge/stream-socket.js"));

// A WebSocket stand-in that records what was opened; the test plays the server.
function fakes() {
  const opened = [];
  const timers = [];
  function FakeWebSocket(url) {
    this.url = url;
    opened.push(this);
  }
  return {
    opened,
    timers,
    WebSocket: FakeWebSocket,
    setTimeout: (callback, delay) => timers.push({ callback, delay }),
    runTimers() {
      const due = timers.splice(0);
      for (const timer of due) timer.callback();
      return due.map((timer) => timer.delay);
    },
  };
}

test("messages are parsed and anything that is not JSON is ignored", () => {
  const env = fakes();
  const got = [];
  const socket = new StreamSocket({ url: "ws://h/ws/tasks/1/", onMessage: (m) => got.push(m), ...env });
  socket.start();
  assert.equal(env.opened[0].url, "ws://h/ws/tasks/1/");
  env.opened[0].onmessage({ data: "not json" });
  env.opened[0].onmessage({ data: "42" });
  env.opened[0].onmessage({ data: '{"type": "snapshot", "runs": []}' });
  assert.deepEqual(got, [{ type: "snapshot", runs: [] }]);
});

test("reconnects back off from 1 s to 30 s and start again after a message", () => {
  const env = fakes();
  const socket = new StreamSocket({ url: "ws://h/s/", onMessage: () => {}, ...env });
  socket.start();
  const delays = [];
  for (let i = 0; i < 7; i++) {
    env.opened[env.opened.length - 1].onclose({ code: 1006 });
    assert.equal(socket.current, null);
    delays.push(...env.runTimers());
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  env.opened[env.opened.length - 1].onmessage({ data: '{"type": "snapshot"}' });
  env.opened[env.opened.length - 1].onclose({ code: 1006 });
  assert.deepEqual(env.runTimers(), [1000]);
  assert.equal(env.opened.length, 9);
});

test("a refusal from the server is final", () => {
  for (const code of [4003, 4004, 4400, 4401, 4403]) {
    const env = fakes();
    const socket = new StreamSocket({ url: "ws://h/s/", onMessage: () => {}, ...env });
    socket.start();
    env.opened[0].onclose({ code });
    assert.equal(socket.closedForGood, true);
    assert.equal(env.timers.length, 0);
    socket.start();
    assert.equal(env.opened.length, 1);
  }
});

test("a socket refused for too many open sockets is retried with the backoff", () => {
  const env = fakes();
  const socket = new StreamSocket({ url: "ws://h/s/", onMessage: () => {}, ...env });
  socket.start();
  env.opened[0].onclose({ code: 4429 });
  assert.equal(socket.closedForGood, false);
  assert.deepEqual(env.runTimers(), [1000]);
  assert.equal(env.opened.length, 2);
});

test("a socket that cannot even be created is retried later", () => {
  const env = fakes();
  const socket = new StreamSocket({
    url: "ws://h/s/",
    onMessage: () => {},
    setTimeout: env.setTimeout,
    WebSocket: function () {
      throw new Error("blocked");
    },
  });
  socket.start();
  assert.deepEqual(env.timers.map((t) => t.delay), [1000]);
});

test("the socket URL follows the page's scheme and host", () => {
  assert.equal(socketUrl({ protocol: "https:", host: "x.example:8443" }, "/ws/tasks/4/"), "wss://x.example:8443/ws/tasks/4/");
  assert.equal(socketUrl({ protocol: "http:", host: "localhost" }, "/ws/tasks/4/"), "ws://localhost/ws/tasks/4/");
});
