// The Node side of tests/differential.rs: reads programs (one JSON object a
// line, see model.rs) on stdin, runs them one after the other in this one
// process, and writes each one's trace, after a `=== program K` header, to
// the file named by argv[2]. A program starts when the previous one has
// left the loop empty (process 'beforeExit').
'use strict';
const fs = require('fs');

const SPIN_MS = Number(process.env.DIFF_SPIN_MS || '1.5');
const progs = fs.readFileSync(0, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
const outPath = process.argv[2];
let out = [];
let k = 0;

function log(s) { out.push(s); }
function show(e) {
  if (e && Array.isArray(e.errors)) return 'agg[' + e.errors.map(show).join(',') + ']';
  return e && e.message !== undefined ? e.message : String(e);
}
function spin() {
  const end = process.hrtime.bigint() + BigInt(Math.round(SPIN_MS * 1e6));
  while (process.hrtime.bigint() < end);
}
process.on('uncaughtException', (e) => log('uncaught ' + show(e)));
process.on('unhandledRejection', (e) => log('unhandled ' + show(e)));

function schedule(via, f) {
  switch (via) {
    case 'tick': process.nextTick(f); break;
    case 'micro': queueMicrotask(f); break;
    case 'imm': setImmediate(f); break;
    case 'timeout': setTimeout(f, 1); spin(); break;
    default: throw new Error('bad via ' + via);
  }
}

function mkSrc(s) {
  switch (s.k) {
    case 'val': return Promise.resolve('v' + s.id);
    case 'rej': return Promise.reject(new Error('e' + s.id));
    case 'def': return new Promise((res, rej) => schedule(s.via, () => {
      log('D' + s.id);
      if (s.reject) rej(new Error('e' + s.id)); else res('d' + s.id);
    }));
    case 'comb': {
      const ps = s.inputs.map(mkSrc);
      switch (s.kind) {
        case 'all': return Promise.all(ps).then((vs) => vs.join(','));
        case 'allSettled': return Promise.allSettled(ps).then((rs) => rs.map((r) => r.status === 'fulfilled' ? 'f:' + r.value : 'r:' + show(r.reason)).join(','));
        case 'race': return Promise.race(ps);
        case 'any': return Promise.any(ps);
      }
    }
  }
  throw new Error('bad src ' + s.k);
}

function ret(r, id) {
  switch (r) {
    case 'value': return 't' + id;
    case 'throw': throw new Error('x' + id);
    case 'resolved': return Promise.resolve('r' + id);
    case 'rejected': return Promise.reject(new Error('e' + id));
  }
  throw new Error('bad ret ' + r);
}

function end(p, id) {
  p.then((v) => log('end' + id + ':' + v), (e) => log('endc' + id + ':' + show(e)));
}

async function runAsync(s) {
  log('A' + s.id);
  for (const a of s.body) {
    if (a.k === 'await') {
      try {
        const v = a.src.k === 'val' ? await ('v' + a.src.id) : await mkSrc(a.src);
        log('aw' + a.id + ':' + v);
      } catch (e) {
        log('awc' + a.id + ':' + show(e));
      }
    } else {
      exec([a]);
    }
  }
  return 'a' + s.id;
}

function exec(steps) {
  for (const s of steps) {
    switch (s.k) {
      case 'log': log('L' + s.id); break;
      case 'timeout': {
        const h = setTimeout(() => { log('T' + s.id); exec(s.body); }, s.delay);
        // Spun even when cleared at once: setTimeout refreshes libuv's
        // clock, from which Node arms its next timer wake-up.
        spin();
        if (s.clear === 'now') clearTimeout(h);
        if (s.clear === 'tick') process.nextTick(() => { log('ct' + s.id); clearTimeout(h); });
        if (s.clear === 'imm') setImmediate(() => { log('ci' + s.id); clearTimeout(h); });
        if (s.clear === 'refresh') setImmediate(() => { log('ri' + s.id); h.refresh(); spin(); });
        break;
      }
      case 'interval': {
        let n = 0;
        const h = setInterval(() => {
          n += 1;
          log('I' + s.id + '.' + n);
          if (n === 1) exec(s.body);
          if (n === s.n) clearInterval(h);
          // Every tick spins, the last too: Node reads libuv's clock as a
          // tick starts (to re-arm from), and arms its next wake-up from it.
          spin();
        }, 1);
        spin();
        break;
      }
      case 'imm': {
        const h = setImmediate(() => { log('S' + s.id); exec(s.body); });
        if (s.clear === 'now') clearImmediate(h);
        if (s.clear === 'tick') process.nextTick(() => { log('cs' + s.id); clearImmediate(h); });
        break;
      }
      case 'tick': process.nextTick(() => { log('N' + s.id); exec(s.body); }); break;
      case 'micro': queueMicrotask(() => { log('M' + s.id); exec(s.body); }); break;
      case 'throw': throw new Error('x' + s.id);
      case 'chain': {
        let p = mkSrc(s.src);
        for (const l of s.links) {
          switch (l.k) {
            case 'then': p = p.then((v) => { log('then' + l.id + ':' + v); exec(l.body); return ret(l.ret, l.id); }); break;
            case 'catch': p = p.catch((e) => { log('catch' + l.id + ':' + show(e)); exec(l.body); return ret(l.ret, l.id); }); break;
            case 'finally': p = p.finally(() => { log('fin' + l.id); exec(l.body); if (l.throws) throw new Error('x' + l.id); }); break;
          }
        }
        if (!s.loose) end(p, s.id);
        break;
      }
      case 'async': end(runAsync(s), s.id); break;
      case 'pool': fs.stat(__filename, () => { log('P' + s.id); exec(s.body); }); break;
      default: throw new Error('bad step ' + s.k);
    }
  }
}

const chunks = [];
function next() {
  if (k > 0) {
    chunks.push('=== program ' + (k - 1) + '\n' + out.map((l) => l + '\n').join(''));
    out = [];
  }
  if (k === progs.length) {
    if (outPath) {
      fs.writeFileSync(outPath, chunks.join(''));
      chunks.length = 0;
    }
    return;
  }
  const p = progs[k++];
  exec(p.main);
  // Keeps the loop alive until this program is done, so that 'beforeExit'
  // comes again (it does not after a handler that left the loop empty),
  // where the main script itself does not (model.rs, `keepalive`). A no-op
  // immediate prints nothing and queues nothing: the trace is the same.
  if (p.keepalive) setImmediate(() => {});
}
process.on('beforeExit', next);
next();
