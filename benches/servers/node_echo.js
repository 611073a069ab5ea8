// Node's `net` in the scaling benchmark (benches/servers/scale.sh): the
// same TCP echo as examples/echo_server.rs, one process.
//
//   node benches/servers/node_echo.js [HOST:PORT]   (default 127.0.0.1:7005)
//
// With SCALE_FAR_TIMER=1 in the environment it also holds one timer an hour
// away, as the idle-loop measurement asks of every server.
'use strict';
const net = require('net');

const [host, port] = (process.argv[2] || '127.0.0.1:7005').split(':');
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('data', (buf) => {
    if (!sock.write(buf)) {
      sock.pause();
      sock.once('drain', () => sock.resume());
    }
  });
  sock.on('error', () => {});
});
server.maxConnections = 100000;
server.listen({ port: Number(port), host, backlog: 4096 }, () => {
  console.error(`node_echo listening on ${host}:${port}`);
});
if (process.env.SCALE_FAR_TIMER === '1') setTimeout(() => {}, 3600 * 1000);
process.on('SIGTERM', () => process.exit(0));
