// Node's `cluster` in the scaling benchmark (benches/servers/scale.sh):
// node_http_hello.js's hello world served by WORKERS processes sharing one
// port (the primary accepts and hands connections round-robin, Node's
// default on Linux), against examples/cluster_http.
//
//   node benches/servers/node_cluster_http.js [HOST:PORT] [WORKERS]
//   (default 127.0.0.1:8087, 2 workers)
'use strict';
const cluster = require('cluster');
const http = require('http');

const [host, port] = (process.argv[2] || '127.0.0.1:8087').split(':');
const workers = Number(process.argv[3] || 2);
const BODY = Buffer.from('Hello, World!');
const HEADERS = { 'Content-Length': '13', 'Content-Type': 'text/plain' };

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    setTimeout(() => process.exit(0), 200);
  });
  console.error(`node_cluster_http on http://${host}:${port}/, ${workers} workers`);
} else {
  const server = http.createServer((req, res) => {
    res.sendDate = false;
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
  server.keepAliveTimeout = 0;
  server.listen(Number(port), host);
  process.on('SIGTERM', () => process.exit(0));
}
