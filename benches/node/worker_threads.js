// Node's worker_threads postMessage, the anchor for
// benches/worker_threads.rs: N pipelined numbers echoed by a worker
// (throughput), then M one at a time (round-trip latency).
// Prints "<msg/s>\n<rtt us> <rtt us> ...".
'use strict';
const { Worker, isMainThread, parentPort } = require('worker_threads');

if (!isMainThread) {
  parentPort.on('message', (m) => parentPort.postMessage(m));
  return;
}

const n = Number(process.argv[2] || 200000);
const m = Number(process.argv[3] || 20000);

function throughput(done) {
  const worker = new Worker(__filename);
  let got = 0;
  let start;
  worker.on('message', () => {
    got++;
    if (got === n) {
      const s = Number(process.hrtime.bigint() - start) / 1e9;
      worker.terminate().then(() => done(n / s));
    }
  });
  // Timed from the worker's start, as the Rust cases are.
  worker.once('online', () => {
    start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) worker.postMessage(i);
  });
}

function latency(done) {
  const worker = new Worker(__filename);
  const times = [];
  let t;
  worker.on('message', (i) => {
    times.push(Number(process.hrtime.bigint() - t) / 1e3);
    if (times.length === m) {
      worker.terminate().then(() => done(times));
      return;
    }
    t = process.hrtime.bigint();
    worker.postMessage(i + 1);
  });
  // The first round trip includes the worker's start-up: wait for it.
  worker.once('online', () => {
    t = process.hrtime.bigint();
    worker.postMessage(0);
  });
}

throughput((tp) => {
  latency((times) => {
    console.log(tp.toFixed(0));
    console.log(times.map((x) => x.toFixed(2)).join(' '));
  });
});
