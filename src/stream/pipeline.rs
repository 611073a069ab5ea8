//! [`pipeline`]: Node's `stream.pipeline(source, ...middles, destination,
//! callback)`.
//!
//! A pipeline of `n` stages has `n - 1` links; link `k` carries stage
//! `k`'s readable side into stage `k + 1`'s writable side:
//!
//! - **backpressure**: a chunk that makes `write` return `false` pauses
//!   the readable side until the writable side drains, so each link holds
//!   about one high-water mark (plus the chunk that crossed it);
//! - **end**: the readable side's end ends the writable side;
//! - **errors**: the first error (or a premature close, or the signal's
//!   abort) destroys every stage that has not finished, with that error,
//!   and is `done`'s; later ones are ignored;
//! - **done**: called exactly once, from a `next_tick`, when every part
//!   has finished (each readable side ended, each writable side finished)
//!   or with the first error.
//!
//! When it is over, the pipeline removes its listeners from the stages
//! (after an error it leaves its error listeners, inert, on the stages it
//! destroyed, so their destroy error is not reported as uncaught); the
//! user's own listeners are never touched.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use super::{Duplex, Readable, Writable};
use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::fs::stream::premature_close;
use crate::listeners::Listener;

type Done = Box<dyn FnOnce(io::Result<()>)>;

/// Pipes `source` through each of `middles` into `destination` (Node's
/// `stream.pipeline(source, ...transforms, destination, callback)`), with
/// backpressure on every link; `done` gets `Ok` once the destination has
/// finished (every byte written; a file closed), or the first error, after
/// which every stage has been destroyed. `done` is called exactly once,
/// never from inside this call.
///
/// A [`net::Stream`](crate::net::Stream) destination finishes when its
/// last byte is handed to the kernel and its end sent (Node's `'finish'`);
/// it closes once the peer ends too, which it sees only while reading
/// (give it a data listener if nobody else reads it).
///
/// **Listeners.** The pipeline adds its own listeners to each stage and
/// removes them when it is over; a listener of yours on any stage keeps
/// running beside them (an `on_data` on the source sees every chunk too,
/// as in Node).
///
/// ```
/// use evloop::fs::{create_read_stream, create_write_stream};
///
/// let copy = std::env::temp_dir().join(format!("evloop-doc-pipeline-{}", std::process::id()));
/// let c = copy.clone();
/// evloop::run(move || {
///     evloop::stream::pipeline(
///         create_read_stream("Cargo.toml"),
///         [],
///         create_write_stream(&c),
///         |r| r.expect("copied"),
///     );
/// })
/// .unwrap();
/// assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read("Cargo.toml").unwrap());
/// std::fs::remove_file(copy).unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn pipeline(
    source: impl Readable + 'static,
    middles: impl IntoIterator<Item = Duplex>,
    destination: impl Writable + 'static,
    done: impl FnOnce(io::Result<()>) + 'static,
) {
    start(
        Rc::new(source),
        middles.into_iter().collect(),
        Rc::new(destination),
        None,
        Box::new(done),
    )
}

/// [`pipeline`] with Node's `{ signal }` option: aborting destroys every
/// stage with the [`AbortError`](crate::abort::AbortError), which `done`
/// gets. Already aborted: the stages are destroyed at once.
pub fn pipeline_with_signal(
    source: impl Readable + 'static,
    middles: impl IntoIterator<Item = Duplex>,
    destination: impl Writable + 'static,
    signal: &AbortSignal,
    done: impl FnOnce(io::Result<()>) + 'static,
) {
    start(
        Rc::new(source),
        middles.into_iter().collect(),
        Rc::new(destination),
        Some(signal),
        Box::new(done),
    )
}

/// One running pipeline. The stages' listeners hold it; it holds the
/// stages until it is over (then it lets go, breaking the cycle).
struct Run {
    /// Readable side `k` feeds writable side `k`.
    readables: RefCell<Vec<Rc<dyn Readable>>>,
    writables: RefCell<Vec<Rc<dyn Writable>>>,
    ended: Vec<Cell<bool>>,
    finished: Vec<Cell<bool>>,
    /// Parts (readable ends and writable finishes) still to come.
    left: Cell<usize>,
    over: Cell<bool>,
    done: RefCell<Option<Done>>,
    /// Every listener the pipeline added; the error ones separately, with
    /// their side (`true`: readable) and link.
    listeners: RefCell<Vec<Listener>>,
    error_listeners: RefCell<Vec<(bool, usize, Listener)>>,
    abort: RefCell<Option<AbortListener>>,
}

fn start(
    source: Rc<dyn Readable>,
    middles: Vec<Duplex>,
    destination: Rc<dyn Writable>,
    signal: Option<&AbortSignal>,
    done: Done,
) {
    let mut readables = vec![source];
    let mut writables = Vec::new();
    for m in middles {
        writables.push(m.writable);
        readables.push(m.readable);
    }
    writables.push(destination);
    let links = readables.len();
    log::debug!("pipeline of {} stages", links + 1);
    let run = Rc::new(Run {
        readables: RefCell::new(readables.clone()),
        writables: RefCell::new(writables.clone()),
        ended: (0..links).map(|_| Cell::new(false)).collect(),
        finished: (0..links).map(|_| Cell::new(false)).collect(),
        left: Cell::new(2 * links),
        over: Cell::new(false),
        done: RefCell::new(Some(done)),
        listeners: RefCell::default(),
        error_listeners: RefCell::default(),
        abort: RefCell::default(),
    });
    for k in 0..links {
        connect(&run, k, &readables[k], &writables[k]);
    }
    if let Some(signal) = signal {
        if let Some(reason) = signal.reason() {
            run.fail(AbortError::new(reason).into());
            return;
        }
        let r = run.clone();
        let l = signal.on_abort_op(move |reason| r.fail(AbortError::new(reason.clone()).into()));
        *run.abort.borrow_mut() = Some(l);
    }
}

/// Wires link `k`: `r`'s chunks into `w`, with backpressure and the end.
fn connect(run: &Rc<Run>, k: usize, r: &Rc<dyn Readable>, w: &Rc<dyn Writable>) {
    let mut ls = Vec::new();
    let mut errs = Vec::new();

    let (me, rr, ww) = (run.clone(), r.clone(), w.clone());
    ls.push(r.add_data_listener(Box::new(move |chunk| {
        if !me.over.get() && !ww.write(chunk) {
            rr.pause();
        }
    })));
    let (me, rr) = (run.clone(), r.clone());
    ls.push(w.add_drain_listener(Box::new(move || {
        if !me.over.get() {
            rr.resume();
        }
    })));
    let (me, ww) = (run.clone(), w.clone());
    ls.push(r.add_end_listener(Box::new(move || {
        if me.over.get() || me.ended[k].replace(true) {
            return;
        }
        me.part_done();
        let me2 = me.clone();
        ww.end_with(Box::new(move |res| match res {
            Ok(()) => {
                if !me2.finished[k].replace(true) {
                    me2.part_done();
                }
            }
            Err(e) => me2.fail(e),
        }));
    })));

    let me = run.clone();
    errs.push((true, k, r.add_error_listener(Box::new(move |e| me.fail(e)))));
    let me = run.clone();
    errs.push((
        false,
        k,
        w.add_error_listener(Box::new(move |e| me.fail(e))),
    ));
    // A side that closes without an error before its part is done: Node's
    // ERR_STREAM_PREMATURE_CLOSE.
    let me = run.clone();
    ls.push(r.add_close_listener(Box::new(move |had_error| {
        if !had_error && !me.ended[k].get() {
            me.fail(premature_close());
        }
    })));
    let me = run.clone();
    ls.push(w.add_close_listener(Box::new(move |had_error| {
        if !had_error && !me.finished[k].get() {
            me.fail(premature_close());
        }
    })));
    run.listeners.borrow_mut().extend(ls);
    run.error_listeners.borrow_mut().extend(errs);
}

impl Run {
    fn part_done(self: &Rc<Self>) {
        let left = self.left.get() - 1;
        self.left.set(left);
        if left == 0 {
            self.finish(Ok(()));
        }
    }

    /// The first error: destroy every stage not yet done with it.
    fn fail(self: &Rc<Self>, e: io::Error) {
        if self.over.get() {
            return;
        }
        log::debug!("pipeline fails: {e}");
        self.over.set(true);
        let readables = self.readables.borrow().clone();
        let writables = self.writables.borrow().clone();
        for (k, r) in readables.iter().enumerate() {
            if !self.ended[k].get() {
                r.destroy_stream(Some(crate::fs::stream::clone_error(&e)));
            }
        }
        for (k, w) in writables.iter().enumerate() {
            if !self.finished[k].get() {
                w.destroy_stream(Some(crate::fs::stream::clone_error(&e)));
            }
        }
        // The stages just destroyed emit their error later: their (inert)
        // error listeners stay until they close and drop them, so that
        // error is not uncaught. The others' go with the rest.
        self.error_listeners.borrow_mut().retain(|(read, k, _)| {
            if *read {
                self.ended[*k].get()
            } else {
                self.finished[*k].get()
            }
        });
        self.finish(Err(e));
    }

    fn finish(self: &Rc<Self>, r: io::Result<()>) {
        self.over.set(true);
        for l in self.listeners.borrow_mut().drain(..) {
            l.remove();
        }
        for (_, _, l) in self.error_listeners.borrow_mut().drain(..) {
            l.remove();
        }
        if let Some(l) = self.abort.borrow_mut().take() {
            l.remove();
        }
        // Let go of the stages: the listeners still held by a `Stream`
        // (until it closes) then hold only this spent record.
        let stages = (
            std::mem::take(&mut *self.readables.borrow_mut()),
            std::mem::take(&mut *self.writables.borrow_mut()),
        );
        drop(stages);
        if let Some(done) = self.done.borrow_mut().take() {
            crate::next_tick(move || done(r));
        }
    }
}
