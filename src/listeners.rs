//! Listener lists: what Node's `EventEmitter` keeps per event.
//!
//! Every `on_*` method of evloop's handles (streams, sockets, channels,
//! workers, clusters) adds a listener to a [`Listeners`] list and returns a
//! [`Listener`], the handle that removes it again (Node's `off`). The rules
//! are `emit`'s:
//!
//! - listeners run in the order they were added;
//! - each event runs over a snapshot: a listener added while the event is
//!   being delivered waits for the next event, and one removed meanwhile
//!   still gets this one (Node copies the array before calling);
//! - a one-shot listener (Node's `once`) is taken off before it runs;
//! - a panicking listener keeps its place (the panic goes on to the loop's
//!   dispatch boundary, as a throw does in Node).
//!
//! A list with one listener keeps it inline, without a vector: most
//! handles have one listener per event, and adding one must not cost an
//! allocation on every accepted connection.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use evloop::net::{connect, TcpListener};
//!
//! let seen = Rc::new(RefCell::new(Vec::new()));
//! let s = seen.clone();
//! evloop::run(move || {
//!     let server = TcpListener::bind("127.0.0.1:0", |conn| {
//!         let c = conn.unwrap();
//!         c.write(b"hi");
//!         c.end();
//!     })
//!     .unwrap();
//!     server.unref();
//!     connect(server.local_addr(), move |r| {
//!         let stream = r.unwrap();
//!         let (a, b) = (s.clone(), s.clone());
//!         stream.on_data(move |_| a.borrow_mut().push("first"));
//!         let second = stream.on_data(move |_| b.borrow_mut().push("second"));
//!         // Node's `off`: the handle takes its listener off again.
//!         second.remove();
//!     });
//! })
//! .unwrap();
//! assert_eq!(*seen.borrow(), ["first"]);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem;
use std::num::NonZeroU32;
use std::rc::Weak;

/// A listener added by an `on_*` method: [`remove`](Listener::remove) takes
/// it off (Node's `emitter.off(event, listener)`). Dropping the handle
/// leaves the listener in place, as forgetting the function does in Node.
///
/// Every `on_*` method of evloop's handles (`Stream`, `UdpSocket`,
/// `Channel`, `Worker`, `Child`, `Cluster`, `ClusterWorker`) adds a
/// listener, as Node's `emitter.on`; a second call adds a second one. The
/// rules are Node's `emit`:
///
/// - listeners run in the order they were added;
/// - each event runs over a snapshot: a listener added while the event is
///   being delivered waits for the next event, and one removed meanwhile
///   (even by an earlier listener) still gets this one;
/// - a one-shot listener (`once_*`, and those of events that happen once:
///   end, close, exit, shutdown) is taken off before it runs;
/// - a panicking listener is an uncaught error, as a throw in Node: the
///   listeners after it miss that event, and it keeps its place for the
///   next;
/// - an `'error'` with no listener is uncaught;
/// - once a handle has closed, a listener added to it is not kept, and its
///   handle removes nothing.
///
/// The library's own reactions (a promise's read, a cluster worker's stop)
/// never take a user's listener's place: they add and remove their own, or
/// use internal hooks.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::net::{connect, TcpListener};
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// evloop::run(move || {
///     let server = TcpListener::bind("127.0.0.1:0", |conn| {
///         let c = conn.unwrap();
///         c.write(b"hi");
///         c.end();
///     })
///     .unwrap();
///     server.unref();
///     connect(server.local_addr(), move |r| {
///         let stream = r.unwrap();
///         let (a, b, c) = (s.clone(), s.clone(), s.clone());
///         stream.on_data(move |_| a.borrow_mut().push("first"));
///         let second = stream.on_data(move |_| b.borrow_mut().push("second"));
///         stream.on_data(move |_| c.borrow_mut().push("third"));
///         assert!(second.remove()); // Node's `off`
///     });
/// })
/// .unwrap();
/// assert_eq!(*seen.borrow(), ["first", "third"]);
/// ```
#[derive(Clone)]
pub struct Listener {
    owner: Weak<dyn RemoveListener>,
    event: u8,
    id: u32,
}

impl Listener {
    /// Builds the handle for listener `id` of event `event` of `owner`.
    pub(crate) fn new(owner: Weak<dyn RemoveListener>, event: u8, id: u32) -> Listener {
        Listener { owner, event, id }
    }

    /// A handle that removes nothing: for an `on_*` call on a handle that
    /// has already closed (its events are over, so the listener was not
    /// kept).
    pub(crate) fn detached() -> Listener {
        Listener {
            owner: Weak::<Detached>::new(),
            event: 0,
            id: 0,
        }
    }

    /// Takes the listener off; `true` if it was still there (a one-shot
    /// listener that has run, or one of a closed handle, is not).
    pub fn remove(&self) -> bool {
        match self.owner.upgrade() {
            Some(owner) => owner.remove_listener(self.event, self.id),
            None => false,
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("event", &self.event)
            .field("id", &self.id)
            .finish()
    }
}

/// What a [`Listener`] handle calls to take its listener off: implemented
/// by each handle's shared state, which knows its lists by event number.
pub(crate) trait RemoveListener {
    /// Removes listener `id` of `event`; `true` if it was there.
    fn remove_listener(&self, event: u8, id: u32) -> bool;
}

/// The owner of [`Listener::detached`].
struct Detached;

impl RemoveListener for Detached {
    fn remove_listener(&self, _: u8, _: u32) -> bool {
        false
    }
}

/// One listener: the callback (out of the list while it runs), its id, and
/// its mark: bit 31 says one-shot, the rest is 0 while it is listening, or,
/// once removed, the delivery count at that moment plus one (a delivery
/// begun before still owes it a call). 24 bytes; the id is never 0, which
/// leaves [`List`] a niche for its other variant.
struct Entry<F: ?Sized> {
    f: Option<Box<F>>,
    id: NonZeroU32,
    mark: u32,
}

const ONCE: u32 = 1 << 31;
const EPOCH: u32 = ONCE - 1;

impl<F: ?Sized> Entry<F> {
    fn once(&self) -> bool {
        self.mark & ONCE != 0
    }

    /// The delivery count at removal plus one, if removed.
    fn removed_at(&self) -> Option<u32> {
        match self.mark & EPOCH {
            0 => None,
            r => Some(r),
        }
    }

    fn mark_removed(&mut self, epoch: u32) {
        if self.removed_at().is_none() {
            self.mark |= epoch;
        }
    }

    /// Whether a delivery that began at `epoch` calls it.
    fn owed(&self, epoch: u32) -> bool {
        // Removed at or after the delivery's start: the snapshot still
        // holds it.
        self.removed_at().map_or(true, |r| r >= epoch)
    }
}

/// The entries: one inline (no allocation for the common case), or none
/// or several in a boxed vector (`Many(None)`: none). 24 bytes: `Many`'s
/// pointer fits beside `One`'s non-zero id, which tells the two apart.
enum List<F: ?Sized> {
    One(Entry<F>),
    #[allow(clippy::box_collection)] // boxed: the list stays 24 bytes
    Many(Option<Box<Vec<Entry<F>>>>),
}

impl<F: ?Sized> Default for List<F> {
    fn default() -> Self {
        List::Many(None)
    }
}

impl<F: ?Sized> List<F> {
    fn entries(&mut self) -> &mut [Entry<F>] {
        match self {
            List::One(e) => std::slice::from_mut(e),
            List::Many(Some(v)) => v,
            List::Many(None) => &mut [],
        }
    }

    /// Whether a listener is being called (its callback is out): an event
    /// is being delivered.
    fn emitting(&mut self) -> bool {
        self.entries().iter().any(|e| e.f.is_none())
    }

    fn push(&mut self, e: Entry<F>) {
        *self = match mem::take(self) {
            List::Many(None) => List::One(e),
            List::One(first) => List::Many(Some(Box::new(vec![first, e]))),
            List::Many(Some(mut v)) => {
                v.push(e);
                List::Many(Some(v))
            }
        };
    }

    /// Takes entry `i` out of the list.
    fn take(&mut self, i: usize) -> Option<Entry<F>> {
        match mem::take(self) {
            List::Many(None) => None,
            List::One(e) => Some(e),
            List::Many(Some(mut v)) => {
                let e = (i < v.len()).then(|| v.remove(i));
                match v.len() {
                    0 => {}
                    1 => *self = List::One(v.pop().expect("one entry")),
                    _ => *self = List::Many(Some(v)),
                }
                e
            }
        }
    }

    /// Drops the entries marked removed (none may be running); returns
    /// them, to be dropped once the list is back in its cell.
    fn purge(&mut self) -> Vec<Box<F>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries().len() {
            if self.entries()[i].removed_at().is_some() {
                out.extend(self.take(i).and_then(|e| e.f));
            } else {
                i += 1;
            }
        }
        out
    }
}

/// The id and delivery counters of one or several [`ListenerList`]s: a
/// handle with several events (a stream has five) shares one, which keeps
/// each list at 32 bytes. Ids only need to grow in insertion order within
/// each list, and deliveries only need a count that grows: a shared one
/// gives both.
pub(crate) struct Counters {
    next_id: Cell<u32>,
    /// How many deliveries have begun (31 bits, never 0): a delivery calls
    /// a removed listener only if it was removed after the delivery began.
    epoch: Cell<u32>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            next_id: Cell::new(1),
            epoch: Cell::new(1),
        }
    }
}

/// The listeners of one event, with [`Counters`] kept elsewhere (passed to
/// each call, always the same ones). `F` is the callback's unsized type,
/// such as `dyn FnMut(&[u8])`. 32 bytes. The list is borrowed only while
/// no user code runs (a listener runs with its callback taken out of its
/// entry, the borrow released). A `RefCell`, not a `Cell` the list is
/// moved out of and back (8 bytes less): that moved 24 bytes twice per
/// event, about 40 instructions per read on the echo server under
/// callgrind.
pub(crate) struct ListenerList<F: ?Sized> {
    list: RefCell<List<F>>,
}

impl<F: ?Sized> Default for ListenerList<F> {
    fn default() -> Self {
        ListenerList {
            list: RefCell::new(List::default()),
        }
    }
}

impl<F: ?Sized> ListenerList<F> {
    /// Runs `f` on the list (no user code may run in it).
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut List<F>) -> R) -> R {
        f(&mut self.list.borrow_mut())
    }

    /// Adds a listener (Node's `on`); returns its id.
    pub(crate) fn add(&self, c: &Counters, f: Box<F>) -> u32 {
        self.insert(c, f, false)
    }

    /// Adds a one-shot listener (Node's `once`); returns its id.
    pub(crate) fn add_once(&self, c: &Counters, f: Box<F>) -> u32 {
        self.insert(c, f, true)
    }

    fn insert(&self, c: &Counters, f: Box<F>, once: bool) -> u32 {
        // Ids grow in insertion order (the snapshot rule relies on it);
        // after 2^32 additions to one list they would wrap.
        let id = NonZeroU32::new(c.next_id.get()).unwrap_or(NonZeroU32::MIN);
        c.next_id.set(id.get().wrapping_add(1).max(1));
        let mark = if once { ONCE } else { 0 };
        self.with(|list| {
            list.push(Entry {
                f: Some(f),
                id,
                mark,
            })
        });
        id.get()
    }

    /// Removes listener `id`; `true` if it was there. During a delivery
    /// that still owes it a call, it is only marked, and the call happens
    /// (the snapshot rule).
    pub(crate) fn remove(&self, c: &Counters, id: u32) -> bool {
        let epoch = c.epoch.get();
        let (found, dropped) = self.with(|list| {
            let Some(e) = list
                .entries()
                .iter_mut()
                .find(|e| e.id.get() == id && e.removed_at().is_none())
            else {
                return (false, Vec::new());
            };
            e.mark_removed(epoch);
            if list.emitting() {
                return (true, Vec::new());
            }
            (true, list.purge())
        });
        drop(dropped); // back in its cell: its captures may use this list
        found
    }

    /// Whether any listener is there.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        // (A shared borrow: asked on every read, never from inside `with`.)
        match &*self.list.borrow() {
            List::One(e) => e.removed_at().is_some(),
            List::Many(None) => true,
            List::Many(Some(v)) => v.iter().all(|e| e.removed_at().is_some()),
        }
    }

    /// How many listeners are there (Node's `listenerCount`).
    pub(crate) fn len(&self) -> usize {
        self.with(|list| {
            list.entries()
                .iter()
                .filter(|e| e.removed_at().is_none())
                .count()
        })
    }

    /// Removes every listener (Node's `removeAllListeners`); they are
    /// dropped after the list is back in its cell, or marked if an event
    /// is being delivered.
    pub(crate) fn clear(&self, c: &Counters) {
        let epoch = c.epoch.get();
        let dropped = self.with(|list| {
            for e in list.entries() {
                e.mark_removed(epoch);
            }
            if list.emitting() {
                List::default()
            } else {
                mem::take(list)
            }
        });
        drop(dropped);
    }

    /// Delivers one event: calls `call` with each listener present when it
    /// began, in the order they were added. Returns how many were called
    /// (0: nobody listens, which the caller may treat as Node treats an
    /// `'error'` without a listener).
    #[inline]
    pub(crate) fn emit(&self, c: &Counters, mut call: impl FnMut(&mut F)) -> usize {
        // The common case, one listener (not one-shot) and no delivery
        // under way: take its callback out, call it, put it back; the
        // general path would scan and purge for nothing.
        let single = self.with(|list| match list {
            List::One(e) if e.mark == 0 => e.f.take().map(|f| (e.id, f)),
            _ => None,
        });
        let Some((id, mut f)) = single else {
            return self.emit_all(c, &mut call);
        };
        let epoch = c.epoch.get();
        c.epoch.set(if epoch >= EPOCH { 1 } else { epoch + 1 });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&mut f)));
        self.put_back_single(id, f);
        if let Err(p) = r {
            std::panic::resume_unwind(p);
        }
        1
    }

    /// [`emit`](Listeners::emit)'s general path: several listeners, a
    /// one-shot one, or a delivery under way.
    #[inline(never)]
    fn emit_all(&self, c: &Counters, call: &mut dyn FnMut(&mut F)) -> usize {
        let epoch = c.epoch.get();
        // The snapshot: ids below `end` were there when the event began.
        // Ids grow in insertion order, so "the next entry after the last
        // one called" is a scan for the smallest larger id.
        let end = c.next_id.get();
        c.epoch.set(if epoch >= EPOCH { 1 } else { epoch + 1 });
        let mut called = 0;
        let mut last: Option<u32> = None;
        let _done = EmitGuard(self);
        loop {
            let taken = self.with(|list| {
                let e = list.entries().iter_mut().find(|e| {
                    e.f.is_some()
                        && e.id.get() < end
                        && last.map_or(true, |l| e.id.get() > l)
                        && e.owed(epoch)
                })?;
                last = Some(e.id.get());
                if e.once() {
                    // Node's `once`: off the list before it runs.
                    e.mark_removed(epoch);
                }
                e.f.take().map(|f| (e.id.get(), e.once(), f))
            });
            let Some((id, once, mut f)) = taken else {
                break;
            };
            called += 1;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&mut f)));
            self.put_back(id, once, f);
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
        }
        called
    }

    /// Puts the callback of [`emit`](Listeners::emit)'s fast path back:
    /// into its entry if the list is still that one entry, else as the
    /// general path does (and then drops what was removed during the call,
    /// as the end of a delivery does).
    #[inline(always)]
    fn put_back_single(&self, id: NonZeroU32, f: Box<F>) {
        let f = self.with(|list| match list {
            List::One(e) if e.id == id && e.mark == 0 => {
                // The entry's callback is out while it runs (`None`): there
                // is nothing to drop, and not dropping keeps the drop glue
                // off the dispatch path.
                mem::forget(e.f.replace(f));
                None
            }
            _ => Some(f),
        });
        if let Some(f) = f {
            self.put_back_slow(id, f);
        }
    }

    /// [`put_back_single`](Listeners::put_back_single) when the list
    /// changed during the call.
    #[cold]
    #[inline(never)]
    fn put_back_slow(&self, id: NonZeroU32, f: Box<F>) {
        self.put_back(id.get(), false, f);
        drop(EmitGuard(self));
    }

    /// Puts a listener back after its call. A one-shot listener, or one
    /// removed during its call, leaves the list instead and is dropped
    /// once the list is back in its cell.
    fn put_back(&self, id: u32, once: bool, f: Box<F>) {
        let spare = self.with(|list| {
            let pos = list.entries().iter().position(|e| e.id.get() == id);
            match pos {
                Some(i) if !once && list.entries()[i].removed_at().is_none() => {
                    list.entries()[i].f = Some(f);
                    None
                }
                Some(i) => {
                    let entry = list.take(i);
                    Some((f, entry))
                }
                None => Some((f, None)),
            }
        });
        drop(spare);
    }
}

/// Ends a delivery; the outermost one drops what was removed during it.
struct EmitGuard<'a, F: ?Sized>(&'a ListenerList<F>);

impl<F: ?Sized> Drop for EmitGuard<'_, F> {
    fn drop(&mut self) {
        let dropped = self.0.with(|list| {
            if list.emitting() {
                Vec::new()
            } else {
                list.purge()
            }
        });
        drop(dropped);
    }
}

/// The listeners of one event, with their own [`Counters`]: what a
/// handle with one list per event uses. 40 bytes.
pub(crate) struct Listeners<F: ?Sized> {
    list: ListenerList<F>,
    c: Counters,
}

impl<F: ?Sized> Default for Listeners<F> {
    fn default() -> Self {
        Listeners {
            list: ListenerList::default(),
            c: Counters::default(),
        }
    }
}

impl<F: ?Sized> Listeners<F> {
    /// Adds a listener (Node's `on`); returns its id.
    pub(crate) fn add(&self, f: Box<F>) -> u32 {
        self.list.add(&self.c, f)
    }

    /// Adds a one-shot listener (Node's `once`); returns its id.
    pub(crate) fn add_once(&self, f: Box<F>) -> u32 {
        self.list.add_once(&self.c, f)
    }

    /// Removes listener `id` ([`ListenerList::remove`]).
    pub(crate) fn remove(&self, id: u32) -> bool {
        self.list.remove(&self.c, id)
    }

    /// Whether any listener is there.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many listeners are there (Node's `listenerCount`).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Removes every listener ([`ListenerList::clear`]).
    pub(crate) fn clear(&self) {
        self.list.clear(&self.c)
    }

    /// Delivers one event ([`ListenerList::emit`]).
    #[inline]
    pub(crate) fn emit(&self, call: impl FnMut(&mut F)) -> usize {
        self.list.emit(&self.c, call)
    }
}

/// Wraps a callback for an event that happens at most once (end, close,
/// exit) as the `FnMut` a list holds: it runs the first time only.
pub(crate) fn once_fn<A>(f: impl FnOnce(A) + 'static) -> Box<dyn FnMut(A)> {
    let mut f = Some(f);
    Box::new(move |a| {
        if let Some(f) = f.take() {
            f(a)
        }
    })
}

/// A copy of `e` for one more listener of an `'error'` event (an
/// `io::Error` is not `Clone`; Node hands every listener the same object):
/// the OS error code, an [`AbortError`](crate::abort::AbortError), or the
/// kind and message.
pub(crate) fn dup_error(e: &std::io::Error) -> std::io::Error {
    if let Some(code) = e.raw_os_error() {
        return std::io::Error::from_raw_os_error(code);
    }
    if let Some(a) = crate::error::abort::as_abort_error(e) {
        return a.clone().into();
    }
    std::io::Error::new(e.kind(), e.to_string())
}

/// Emits an `io::Error` to every listener of `list`, each its own copy
/// ([`dup_error`]); with no listener, hands it back (Node's `'error'` with
/// no listener is loud: the caller reports it as uncaught).
pub(crate) fn emit_error(
    list: &Listeners<dyn FnMut(std::io::Error)>,
    e: std::io::Error,
) -> Result<(), std::io::Error> {
    emit_error_in(&list.list, &list.c, e)
}

/// [`emit_error`] for a [`ListenerList`] and its counters.
pub(crate) fn emit_error_in(
    list: &ListenerList<dyn FnMut(std::io::Error)>,
    c: &Counters,
    e: std::io::Error,
) -> Result<(), std::io::Error> {
    if list.is_empty() {
        return Err(e);
    }
    let mut orig = Some(e);
    let mut spare = None;
    let n = list.len();
    let mut i = 0;
    list.emit(c, |f| {
        i += 1;
        let arg = if i < n {
            dup_error(orig.as_ref().or(spare.as_ref()).expect("an error"))
        } else if let Some(e) = orig.take() {
            // The last one gets the original (keeping a copy in case a
            // listener re-entered and more are called than counted).
            spare = Some(dup_error(&e));
            e
        } else {
            dup_error(spare.as_ref().expect("a copy"))
        };
        f(arg)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::Listeners;

    type Cb = dyn FnMut(u32);

    #[test]
    fn a_list_is_40_bytes() {
        // Five of them per stream: memory per idle connection counts.
        assert_eq!(std::mem::size_of::<Listeners<Cb>>(), 40);
        assert_eq!(std::mem::size_of::<super::ListenerList<Cb>>(), 32);
    }

    fn log() -> Rc<RefCell<Vec<String>>> {
        Rc::new(RefCell::new(Vec::new()))
    }

    #[test]
    fn listeners_run_in_the_order_they_were_added() {
        let l: Listeners<Cb> = Listeners::default();
        let seen = log();
        for name in ["a", "b", "c"] {
            let s = seen.clone();
            l.add(Box::new(move |v| s.borrow_mut().push(format!("{name}{v}"))));
        }
        assert_eq!(l.emit(|f| f(1)), 3);
        assert_eq!(*seen.borrow(), ["a1", "b1", "c1"]);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn once_runs_once_and_remove_takes_off() {
        let l: Listeners<Cb> = Listeners::default();
        let seen = log();
        let s = seen.clone();
        l.add_once(Box::new(move |v| s.borrow_mut().push(format!("once{v}"))));
        let s = seen.clone();
        let id = l.add(Box::new(move |v| s.borrow_mut().push(format!("on{v}"))));
        l.emit(|f| f(1));
        assert!(l.remove(id));
        assert!(!l.remove(id), "a second remove finds nothing");
        assert_eq!(l.emit(|f| f(2)), 0);
        assert_eq!(*seen.borrow(), ["once1", "on1"]);
        assert!(l.is_empty());
    }

    #[test]
    fn an_event_runs_over_a_snapshot() {
        // As Node's emit: a listener added during the event waits for the
        // next one; one removed during it still gets this one.
        let l: Rc<Listeners<Cb>> = Rc::new(Listeners::default());
        let seen = log();
        let second_id = Rc::new(std::cell::Cell::new(0));
        let (l2, s, sid) = (l.clone(), seen.clone(), second_id.clone());
        l.add(Box::new(move |v| {
            s.borrow_mut().push(format!("first{v}"));
            if v == 1 {
                let s2 = s.clone();
                l2.add(Box::new(move |v| s2.borrow_mut().push(format!("late{v}"))));
                assert!(l2.remove(sid.get()));
            }
        }));
        let s = seen.clone();
        second_id.set(l.add(Box::new(move |v| s.borrow_mut().push(format!("second{v}")))));
        l.emit(|f| f(1));
        l.emit(|f| f(2));
        assert_eq!(*seen.borrow(), ["first1", "second1", "first2", "late2"]);
        l.clear(); // the first listener holds `l`: break the cycle
    }

    #[test]
    fn a_panicking_listener_keeps_its_place() {
        let l: Listeners<Cb> = Listeners::default();
        let seen = log();
        l.add(Box::new(|v| {
            if v == 1 {
                panic!("listener");
            }
        }));
        let s = seen.clone();
        l.add(Box::new(move |v| s.borrow_mut().push(format!("b{v}"))));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.emit(|f| f(1))));
        assert!(r.is_err());
        assert_eq!(l.len(), 2);
        assert_eq!(l.emit(|f| f(2)), 2);
        assert_eq!(*seen.borrow(), ["b2"]);
    }

    #[test]
    fn a_listener_can_emit_again_and_clear() {
        let l: Rc<Listeners<Cb>> = Rc::new(Listeners::default());
        let seen = log();
        let (l2, s) = (l.clone(), seen.clone());
        l.add(Box::new(move |v| {
            s.borrow_mut().push(format!("a{v}"));
            if v == 1 {
                // Re-entrant: the running listener is out of the list, so
                // the nested event reaches only the others.
                l2.emit(|f| f(10));
                l2.clear();
            }
        }));
        let s = seen.clone();
        l.add(Box::new(move |v| s.borrow_mut().push(format!("b{v}"))));
        l.emit(|f| f(1));
        assert_eq!(*seen.borrow(), ["a1", "b10", "b1"]);
        assert!(l.is_empty());
        assert_eq!(l.emit(|f| f(3)), 0);
    }
}
