// Node's `http` module in the server benchmark (benches/servers/run.sh):
// the same hello world as http_common.rs (200, Content-Length: 13,
// Content-Type: text/plain, "Hello, World!"), keep-alive, one process.
//
//   node benches/servers/node_http_hello.js [HOST:PORT]   (default 127.0.0.1:8084)
//
// Node adds a `Connection: keep-alive` header of its own to every
// keep-alive response (24 bytes more than the Rust servers send); the Date
// header is turned off and keepAliveTimeout = 0 drops the `Keep-Alive:
// timeout=5` header, so that is the only difference on the wire.
'use strict';
const http = require('http');

const [host, port] = (process.argv[2] || '127.0.0.1:8084').split(':');
const BODY = Buffer.from('Hello, World!');
const HEADERS = { 'Content-Length': '13', 'Content-Type': 'text/plain' };

const server = http.createServer((req, res) => {
  res.sendDate = false;
  res.writeHead(200, HEADERS);
  res.end(BODY);
});
server.keepAliveTimeout = 0;
server.listen(Number(port), host, () => {
  console.error(`node_http_hello listening on http://${host}:${port}/`);
});
process.on('SIGTERM', () => process.exit(0));
