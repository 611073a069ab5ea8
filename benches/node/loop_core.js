// The Node side of benches/loop_core.rs: the same workloads, timed in the
// same run. Usage: node loop_core.js N
'use strict';
const n = Number(process.argv[2] || 1000000);

function delays() {
  // Same xorshift as the Rust side (BigInt for 64-bit arithmetic).
  let x = 0x9E3779B97F4A7C15n;
  const mask = (1n << 64n) - 1n;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    out[i] = Number(1n + (x % 999999n)) / 1000; // ms
  }
  return out;
}

function timers(cancelHalf) {
  return new Promise((resolve) => {
    const ds = delays();
    let fired = 0;
    const want = cancelHalf ? n - Math.floor(n / 2) : n;
    global.gc && global.gc();
    const base = process.memoryUsage().heapUsed;
    const start = process.hrtime.bigint();
    const hs = new Array(n);
    for (let i = 0; i < n; i++) {
      hs[i] = setTimeout(() => {
        if (++fired === want) {
          resolve({ arm, bytes, total: Number(process.hrtime.bigint() - start) / 1e6 });
        }
      }, ds[i]);
    }
    const arm = Number(process.hrtime.bigint() - start) / n;
    const bytes = (process.memoryUsage().heapUsed - base) / n;
    if (cancelHalf) for (let i = 0; i < n; i += 2) clearTimeout(hs[i]);
  });
}

function immediates() {
  return new Promise((resolve) => {
    let c = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) setImmediate(() => { if (++c === n) resolve(Number(process.hrtime.bigint() - start) / n); });
  });
}

function microtaskChain() {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    let left = n;
    const hop = () => { if (--left === 0) resolve(Number(process.hrtime.bigint() - start) / n); else queueMicrotask(hop); };
    queueMicrotask(hop);
  });
}

(async () => {
  const t = await timers(false);
  console.log(`  timers:                 arm ${t.arm.toFixed(1)} ns, ~${t.bytes.toFixed(0)} B/pending (JS heap), all fired in ${t.total.toFixed(0)} ms`);
  const h = await timers(true);
  console.log(`  timers, half cancelled: arm ${h.arm.toFixed(1)} ns, all fired in ${h.total.toFixed(0)} ms`);
  console.log(`  set_immediate:          ${(await immediates()).toFixed(1)} ns per item`);
  console.log(`  microtask hop:          ${(await microtaskChain()).toFixed(1)} ns per hop`);
})();
