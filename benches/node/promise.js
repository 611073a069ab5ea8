// The Node side of benches/promise.rs: the same workloads, timed in the
// same run. Usage: node --expose-gc promise.js N M
// Prints `name value` lines (ns per item, bytes per promise), medians of 3.
'use strict';
const n = Number(process.argv[2] || 1000000);
const m = Number(process.argv[3] || 100000);
const now = () => process.hrtime.bigint();
const gc = () => global.gc && global.gc();

// Each workload resolves with { build, run } in ns (totals).
function chain() {
  return new Promise((done) => {
    gc();
    const start = now();
    let p = Promise.resolve(0);
    for (let i = 0; i < n; i++) p = p.then((v) => v + 1);
    const built = now();
    p.then((v) => {
      if (v !== n) throw new Error('the chain lost a step');
      const end = now();
      done({ build: built - start, run: end - built });
    });
  });
}

function fanOut() {
  return new Promise((done) => {
    gc();
    const start = now();
    const p = Promise.resolve(0);
    for (let i = 0; i < n; i++) p.then((v) => v + 1);
    const built = now();
    p.then(() => {
      const end = now();
      done({ build: built - start, run: end - built });
    });
  });
}

function all(pending) {
  return new Promise((done) => {
    gc();
    const start = now();
    const inputs = new Array(m);
    const resolvers = pending ? new Array(m) : null;
    for (let i = 0; i < m; i++) {
      if (pending) {
        const w = Promise.withResolvers();
        inputs[i] = w.promise;
        resolvers[i] = w.resolve;
      } else {
        inputs[i] = Promise.resolve(i);
      }
    }
    Promise.all(inputs).then((v) => {
      if (v.length !== m) throw new Error('wrong length');
      const end = now();
      done({ build: built - start, run: end - built });
    });
    if (pending) setImmediate(() => { for (let i = 0; i < m; i++) resolvers[i](i); });
    const built = now();
  });
}

function memory(withThen) {
  const keep = new Array(m).fill(null);
  gc();
  const base = process.memoryUsage().heapUsed;
  const start = now();
  for (let i = 0; i < m; i++) {
    const w = Promise.withResolvers();
    if (withThen) w.promise.then((v) => v);
    keep[i] = w.resolve;
  }
  const ns = Number(now() - start) / m;
  gc();
  const bytes = (process.memoryUsage().heapUsed - base) / m;
  for (let i = 0; i < m; i++) keep[i](0);
  return { bytes, ns };
}

const median = (xs, key) => xs.slice().sort((a, b) => key(a) - key(b))[xs.length >> 1];
async function rounds(f, key) {
  const xs = [];
  for (let i = 0; i < 3; i++) xs.push(await f());
  return median(xs, key);
}
const out = (name, v) => console.log(`${name} ${v.toFixed(2)}`);
const tot = (t) => Number(t.build + t.run);

(async () => {
  if (typeof Promise.withResolvers !== 'function') {
    // Node < 22 without the flag: the spec's definition.
    Promise.withResolvers = function () {
      let resolve, reject;
      const promise = new Promise((a, b) => { resolve = a; reject = b; });
      return { promise, resolve, reject };
    };
  }
  const c = await rounds(chain, tot);
  out('chain_build', Number(c.build) / n);
  out('chain_run', Number(c.run) / n);
  out('chain_total', tot(c) / n);
  const f = await rounds(fanOut, tot);
  out('fan_build', Number(f.build) / n);
  out('fan_run', Number(f.run) / n);
  out('fan_total', tot(f) / n);
  const ap = await rounds(() => all(true), tot);
  out('all_pending_total', tot(ap) / m);
  const ar = await rounds(() => all(false), tot);
  out('all_resolved_total', tot(ar) / m);
  const mb = await rounds(async () => memory(false), (x) => x.ns);
  out('mem_bare_bytes', mb.bytes);
  out('mem_bare_ns', mb.ns);
  const mt = await rounds(async () => memory(true), (x) => x.ns);
  out('mem_then_bytes', mt.bytes);
  out('mem_then_ns', mt.ns);
})();
