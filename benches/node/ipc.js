// Node's fork() IPC, the anchor for benches/ipc.rs: N pipelined 64-byte
// messages (throughput), then M one at a time (round-trip latency).
// Prints "<msg/s>\n<rtt us> <rtt us> ...".
'use strict';
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  process.on('message', (m) => process.send(m));
  return;
}

const n = Number(process.argv[2] || 200000);
const m = Number(process.argv[3] || 20000);
const msg = 'x'.repeat(64);

function throughput(done) {
  const child = fork(__filename, ['child']);
  let got = 0;
  let sent = 0;
  const start = process.hrtime.bigint();
  child.on('message', () => {
    got++;
    if (got === n) {
      const s = Number(process.hrtime.bigint() - start) / 1e9;
      child.disconnect();
      done(n / s);
    }
  });
  // process.send returns false when its queue is backed up: let the loop
  // flush it before sending more (backpressure).
  function pump() {
    while (sent < n) {
      sent++;
      if (!child.send(msg)) {
        setImmediate(pump);
        return;
      }
    }
  }
  pump();
}

function latency(done) {
  const child = fork(__filename, ['child']);
  const times = [];
  let t = process.hrtime.bigint();
  child.on('message', () => {
    times.push(Number(process.hrtime.bigint() - t) / 1e3);
    if (times.length === m) {
      child.disconnect();
      done(times);
      return;
    }
    t = process.hrtime.bigint();
    child.send(msg);
  });
  child.send(msg);
}

throughput((tp) => {
  latency((times) => {
    console.log(tp.toFixed(0));
    console.log(times.map((x) => x.toFixed(2)).join(' '));
  });
});
