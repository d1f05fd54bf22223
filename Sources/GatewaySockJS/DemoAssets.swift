/// The demo page of emqttd_sockjs (http://localhost:61616/index.html) and its small STOMP
/// client, served by the gateway itself: no build step, nothing fetched from elsewhere (the
/// SockJS client is Debian's node-sockjs-client, served at /sockjs.min.js).
public enum DemoAssets {
    public static func indexHTML(prefix: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Swiftlet: STOMP over SockJS</title>
        <style>
          body { font-family: sans-serif; margin: 2em; max-width: 52em; color: #222; }
          fieldset { margin-bottom: 1em; border: 1px solid #bbb; }
          label { display: inline-block; min-width: 6em; }
          input[type=text], input[type=password] { width: 18em; }
          #status { font-weight: bold; }
          #log { font-family: monospace; background: #f4f4f4; padding: 0.5em 1.5em; min-height: 6em; }
        </style>
        <script src="/sockjs.min.js"></script>
        <script src="/stomp-lite.js"></script>
        </head>
        <body>
        <h1>STOMP over SockJS</h1>
        <p>This page talks STOMP 1.2 through SockJS (<code>\(prefix)</code>) to swiftlet-gateways; every
        message goes through the broker, so MQTT clients see what you publish on
        <code>/topic/a/b</code> as the topic <code>a/b</code>, and you see theirs.</p>
        <fieldset><legend>Connection</legend>
          <label for="login">Login</label> <input type="text" id="login" value="guest">
          <label for="passcode">Passcode</label> <input type="password" id="passcode" value="guest">
          <button id="connect">Connect</button> <button id="disconnect">Disconnect</button>
          <p>Status: <span id="status">disconnected</span> <span id="transport"></span></p>
        </fieldset>
        <fieldset><legend>Subscribe</legend>
          <label for="subscription">Destination</label> <input type="text" id="subscription" value="/topic/demo/#">
          <button id="subscribe">Subscribe</button>
        </fieldset>
        <fieldset><legend>Publish</legend>
          <label for="destination">Destination</label> <input type="text" id="destination" value="/topic/demo/browser"><br>
          <label for="message">Message</label> <input type="text" id="message" value="Hello from the browser">
          <button id="publish">Publish</button>
        </fieldset>
        <h2>Messages</h2>
        <ul id="log"></ul>
        <script>
        (function () {
          var client = null;
          function $(id) { return document.getElementById(id); }
          function status(s) { $("status").textContent = s; }
          function log(cls, text) {
            var li = document.createElement("li");
            li.className = cls;
            li.textContent = text;
            $("log").appendChild(li);
          }
          $("connect").onclick = function () {
            var sock = new SockJS("\(prefix)");
            client = StompLite.over(sock);
            status("connecting");
            client.connect($("login").value, $("passcode").value, function (frame) {
              status("connected");
              $("transport").textContent = "(" + (sock.transport || "") + ", session " + frame.headers.session + ")";
            }, function (error) {
              status("error: " + (error.headers.message || "closed"));
            });
          };
          $("disconnect").onclick = function () { if (client) { client.disconnect(); status("disconnected"); } };
          $("subscribe").onclick = function () {
            var dest = $("subscription").value;
            client.subscribe(dest, function (m) {
              log("msg", m.headers.destination + ": " + m.body);
            }, function () { log("info", "subscribed to " + dest); });
          };
          $("publish").onclick = function () {
            client.send($("destination").value, $("message").value, function () { log("info", "published"); });
          };
        })();
        </script>
        </body>
        </html>

        """
    }

    public static let stompLite = #"""
        // stomp-lite.js: a small STOMP 1.2 client over a WebSocket-like object (SockJS),
        // served by swiftlet-gateways for its demo page.
        (function (global) {
          "use strict";
          function escape(v) {
            return String(v).replace(/\\/g, "\\\\").replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/:/g, "\\c");
          }
          function unescape(v) {
            return v.replace(/\\(.)/g, function (_, c) { return { n: "\n", r: "\r", c: ":", "\\": "\\" }[c] || c; });
          }
          function Client(ws) {
            var self = this;
            this.ws = ws;
            this.buffer = "";
            this.subscriptions = {};
            this.receipts = {};
            this.counter = 0;
            ws.onmessage = function (e) { self.receive(e.data); };
            ws.onclose = function () { if (self.onError) { self.onError({ headers: { message: "connection closed" } }); } };
          }
          Client.prototype.transmit = function (command, headers, body) {
            var out = command + "\n";
            for (var k in headers) {
              if (Object.prototype.hasOwnProperty.call(headers, k)) {
                out += (command === "CONNECT" ? k + ":" + headers[k] : escape(k) + ":" + escape(headers[k])) + "\n";
              }
            }
            this.ws.send(out + "\n" + (body || "") + "\u0000");
          };
          Client.prototype.receive = function (data) {
            this.buffer += data;
            while (true) {
              this.buffer = this.buffer.replace(/^(\r?\n)+/, "");
              var end = this.buffer.indexOf("\u0000");
              if (end < 0) { return; }
              var raw = this.buffer.substring(0, end);
              this.buffer = this.buffer.substring(end + 1);
              var split = raw.search(/\r?\n\r?\n/);
              var head = raw.substring(0, split).split(/\r?\n/);
              var body = raw.substring(raw.indexOf("\n", split + 1) + 1);
              var frame = { command: head[0], headers: {}, body: body };
              for (var i = 1; i < head.length; i++) {
                var colon = head[i].indexOf(":");
                var key = unescape(head[i].substring(0, colon));
                if (!(key in frame.headers)) { frame.headers[key] = unescape(head[i].substring(colon + 1)); }
              }
              this.dispatch(frame);
            }
          };
          Client.prototype.dispatch = function (frame) {
            if (frame.command === "CONNECTED") {
              if (this.onConnected) { this.onConnected(frame); }
            } else if (frame.command === "MESSAGE") {
              var handler = this.subscriptions[frame.headers.subscription];
              if (handler) { handler(frame); }
            } else if (frame.command === "RECEIPT") {
              var done = this.receipts[frame.headers["receipt-id"]];
              delete this.receipts[frame.headers["receipt-id"]];
              if (done) { done(frame); }
            } else if (frame.command === "ERROR") {
              var onError = this.onError;
              this.onError = null;
              if (onError) { onError(frame); }
            }
          };
          Client.prototype.connect = function (login, passcode, onConnected, onError) {
            var self = this;
            this.onConnected = onConnected;
            this.onError = onError;
            this.ws.onopen = function () {
              var headers = { "accept-version": "1.2", host: "/", "heart-beat": "0,0" };
              if (login) { headers.login = login; headers.passcode = passcode; }
              self.transmit("CONNECT", headers);
            };
          };
          Client.prototype.receipt = function (headers, done) {
            if (done) {
              var id = "r-" + (++this.counter);
              this.receipts[id] = done;
              headers.receipt = id;
            }
            return headers;
          };
          Client.prototype.subscribe = function (destination, handler, done) {
            var id = "sub-" + (++this.counter);
            this.subscriptions[id] = handler;
            this.transmit("SUBSCRIBE", this.receipt({ id: id, destination: destination, ack: "auto" }, done));
            return id;
          };
          Client.prototype.send = function (destination, body, done) {
            this.transmit("SEND", this.receipt({ destination: destination, "content-type": "text/plain" }, done), body);
          };
          Client.prototype.disconnect = function () {
            this.onError = null;
            this.transmit("DISCONNECT", {});
            this.ws.close();
          };
          global.StompLite = { over: function (ws) { return new Client(ws); } };
        })(this);

        """#

    public static func iframeHTML(sockjsURL: String) -> String {
        """
        <!DOCTYPE html>
        <html>
        <head>
          <meta http-equiv="X-UA-Compatible" content="IE=edge" />
          <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
          <script>
            document.domain = document.domain;
            _sockjs_onload = function(){SockJS.bootstrap_iframe();};
          </script>
          <script src="\(sockjsURL)"></script>
        </head>
        <body>
          <h2>Don't panic!</h2>
          <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
        </body>
        </html>
        """
    }
}
