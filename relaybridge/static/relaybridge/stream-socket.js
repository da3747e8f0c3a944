/*
 * relaybridge's stream socket: connect, parse, back off, reconnect. No DOM.
 *
 * new StreamSocket({url, onMessage, WebSocket, setTimeout}) opens `url` at
 * start() and calls onMessage(message) with every JSON message. When the socket
 * closes it reconnects after a delay that doubles from 1 s up to 30 s and starts
 * again at 1 s once a message arrives; a close code in `noReconnect` (the
 * consumer's refusals: 4003 forbidden, 4004 no such thread, 4400 a malformed
 * thread value or path, 4401 the session ended, 4403 a foreign origin) ends it
 * for good. 4429 (too many sockets for this person) is retried with the backoff,
 * as another tab may close meanwhile. WebSocket and setTimeout are passed in so that
 * Node's test runner can drive it.
 *
 * Loaded as a classic script (window.relaybridgeStreamSocket) and, in Node's test
 * runner, as a CommonJS module.
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module && module.exports) {
    module.exports = api;
  } else {
    root.relaybridgeStreamSocket = api;
  }
})(this, function () {
  "use strict";

  var NO_RECONNECT = [4003, 4004, 4400, 4401, 4403];
  var BACKOFF_START_MS = 1000;
  var BACKOFF_MAX_MS = 30000;

  function StreamSocket(options) {
    this.url = options.url;
    this.onMessage = options.onMessage;
    this.WebSocket = options.WebSocket;
    this.setTimeout = options.setTimeout;
    this.noReconnect = options.noReconnect || NO_RECONNECT;
    this.backoffStart = options.backoffStartMs || BACKOFF_START_MS;
    this.backoffMax = options.backoffMaxMs || BACKOFF_MAX_MS;
    this.backoff = this.backoffStart;
    this.current = null; // the open or opening WebSocket, if any
    this.closedForGood = false;
    this.closeCode = null;
  }

  StreamSocket.prototype.start = function () {
    var self = this;
    var socket;
    if (this.closedForGood) return;
    try {
      socket = new this.WebSocket(this.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.current = socket;
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return; // not ours to understand
      }
      if (!message || typeof message !== "object") return;
      self.backoff = self.backoffStart;
      self.onMessage(message);
    };
    socket.onclose = function (event) {
      if (self.current !== socket) return;
      self.current = null;
      self.closeCode = event.code;
      if (self.noReconnect.indexOf(event.code) !== -1) {
        self.closedForGood = true;
        return;
      }
      self.scheduleReconnect();
    };
  };

  StreamSocket.prototype.scheduleReconnect = function () {
    var self = this;
    var delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.backoffMax);
    this.setTimeout(function () {
      self.start();
    }, delay);
    return delay;
  };

  // "ws://host/path" for a path on this page's host.
  function socketUrl(location, path) {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  return { StreamSocket: StreamSocket, socketUrl: socketUrl, NO_RECONNECT: NO_RECONNECT };
});
