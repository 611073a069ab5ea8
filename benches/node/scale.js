// The Node side of benches/scale.rs: timers, tasks (async functions) and
// promises at 10^3 .. 10^7 pending, the same workloads in the same order.
// Usage: node --expose-gc --max-old-space-size=8192 scale.js [--quick]
// Prints `csv,METRIC,node,X,VALUE` lines (and a few for people).
'use strict';
const os = require('os');
const quick = process.argv.includes('--quick');
const top = quick ? 5 : 7;
const gc = global.gc || (() => {});
if (!global.gc) console.log('(run with --expose-gc: the byte figures are rough without it)');

function csv(metric, x, v) {
  console.log(`csv,${metric},node,${x},${v.toFixed(1)}`);
}

function reps(x) {
  if (quick) return x <= 10000 ? 3 : 1;
  return x <= 10000 ? 7 : x <= 100000 ? 3 : 1;
}

function median(v) {
  v.sort((a, b) => a - b);
  return v[v.length >> 1];
}

// Same xorshift as the Rust side; delays in ms (fractional, as Rust's µs).
function delays(n, loUs, spanUs) {
  let x = 0x9E3779B97F4A7C15n;
  const mask = (1n << 64n) - 1n;
  const span = BigInt(spanUs);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    out[i] = (loUs + Number(x % span)) / 1000;
  }
  return out;
}

const FIRE_LO_US = 1000, FIRE_SPAN_US = 49000, FIRE_WAIT_MS = 60, CANCEL_LO_US = 100000000;
const now = () => process.hrtime.bigint();
const perNs = (t0, t1, x) => Number(t1 - t0) / x;
const tick = () => new Promise((r) => setImmediate(r));

function spin(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

// Arm x timers, then (after they are all due) time their firing.
function armFire(x) {
  return new Promise((resolve) => {
    const ds = delays(x, FIRE_LO_US, FIRE_SPAN_US);
    let fired = 0, t2;
    gc();
    const base = process.memoryUsage().heapUsed;
    const cb = () => {
      if (++fired === x) resolve({ arm, bytes, fire: perNs(t2, now(), x) });
    };
    const t0 = now();
    for (let i = 0; i < x; i++) setTimeout(cb, ds[i]);
    const arm = perNs(t0, now(), x);
    const bytes = (process.memoryUsage().heapUsed - base) / x;
    spin(FIRE_WAIT_MS);
    t2 = now();
  });
}

function cancel(x) {
  const ds = delays(x, CANCEL_LO_US, FIRE_SPAN_US);
  const hs = new Array(x);
  for (let i = 0; i < x; i++) hs[i] = setTimeout(() => { throw new Error('cancelled'); }, ds[i]);
  const t0 = now();
  for (let i = 0; i < x; i++) clearTimeout(hs[i]);
  return perNs(t0, now(), x);
}

function tasks(x) {
  return new Promise((resolve) => {
    let c = 0;
    const t0 = now();
    const task = async () => {
      await undefined; // one hop, as yield_now
      if (++c === x) resolve(perNs(t0, now(), x));
    };
    for (let i = 0; i < x; i++) task();
  });
}

function promises(x) {
  return new Promise((resolve) => {
    let c = 0;
    const keep = new Array(x);
    const then = () => { if (++c === x) resolve(perNs(t0, now(), x)); };
    const t0 = now();
    for (let i = 0; i < x; i++) {
      new Promise((r) => { keep[i] = r; }).then(then);
    }
    for (let i = 0; i < x; i++) keep[i](1);
  });
}

const never = new Promise(() => {});
async function parked() { await never; }

function taskBytes(x) {
  gc();
  const base = process.memoryUsage().heapUsed;
  for (let i = 0; i < x; i++) parked();
  const bytes = (process.memoryUsage().heapUsed - base) / x;
  return bytes; // they stay parked until collected with `never`'s reactions
}

function promiseBytes(x) {
  const keep = new Array(x);
  gc();
  const base = process.memoryUsage().heapUsed;
  for (let i = 0; i < x; i++) new Promise((r) => { keep[i] = r; }).then((v) => v);
  const bytes = (process.memoryUsage().heapUsed - base) / x;
  for (let i = 0; i < x; i++) keep[i](0);
  return bytes;
}

function fits(x, bytes) {
  if (os.freemem() > 2 * bytes) return true;
  console.log(`  (skipped: node at ${x} needs ~${(bytes / 1e9).toFixed(1)} GB)`);
  return false;
}

async function main() {
  const t0 = Date.now();
  console.log(`node scale: X = 10^3 .. 10^${top}${quick ? ' (--quick)' : ''}`);
  // Warm-up, not reported: the JIT compiles the hot paths first (at 10^3
  // they would otherwise run in the interpreter).
  await armFire(10000);
  cancel(10000);
  await tasks(10000);
  await promises(10000);
  for (let e = 3; e <= top; e++) {
    const x = 10 ** e;
    if (!fits(x, 300 * x)) continue;
    const rs = [], cs = [];
    for (let i = 0; i < reps(x); i++) {
      rs.push(await armFire(x));
      await tick();
      cs.push(cancel(x));
      await tick();
    }
    const arm = median(rs.map((r) => r.arm)), fire = median(rs.map((r) => r.fire));
    const bytes = median(rs.map((r) => r.bytes)), can = median(cs);
    console.log(`  node   X=${String(x).padStart(8)}: arm ${arm.toFixed(1)} ns  fire ${fire.toFixed(1)} ns  cancel ${can.toFixed(1)} ns  ${bytes.toFixed(1)} B per pending timer`);
    csv('timer_arm_ns', x, arm);
    csv('timer_fire_ns', x, fire);
    csv('timer_cancel_ns', x, can);
    csv('timer_bytes', x, bytes);
  }
  for (let e = 3; e <= Math.min(top, 6); e++) {
    const x = 10 ** e;
    const ts = [], ps = [];
    for (let i = 0; i < reps(x); i++) {
      ts.push(await tasks(x));
      ps.push(await promises(x));
    }
    const tb = taskBytes(x);
    await tick();
    const pb = promiseBytes(x);
    await tick();
    const t = median(ts), p = median(ps);
    console.log(`  node   X=${String(x).padStart(8)}: async fn ${t.toFixed(1)} ns, ${tb.toFixed(1)} B pending; promise+then ${p.toFixed(1)} ns, ${pb.toFixed(1)} B pending`);
    csv('task_spawn_ns', x, t);
    csv('task_bytes', x, tb);
    csv('promise_ns', x, p);
    csv('promise_bytes', x, pb);
  }
  console.log(`node: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main();
