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
//! ```ignore
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

// (Until every handle uses it: the `on_*` methods move over one by one.)
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem;
use std::rc::Weak;

/// A listener added by an `on_*` method: [`remove`](Listener::remove) takes
/// it off (Node's `emitter.off(event, listener)`). Dropping the handle
/// leaves the listener in place, as forgetting the function does in Node.
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

/// One listener: the callback (out of the list while it runs), its id,
/// whether it is one-shot, and, once removed, the delivery count at that
/// moment (a delivery begun before still owes it a call).
struct Entry<F: ?Sized> {
    f: Option<Box<F>>,
    id: u32,
    once: bool,
    removed_at: Option<u32>,
}

enum List<F: ?Sized> {
    None,
    One(Entry<F>),
    Many(Vec<Entry<F>>),
}

impl<F: ?Sized> List<F> {
    fn entries(&mut self) -> &mut [Entry<F>] {
        match self {
            List::None => &mut [],
            List::One(e) => std::slice::from_mut(e),
            List::Many(v) => v,
        }
    }

    fn push(&mut self, e: Entry<F>) {
        *self = match mem::replace(self, List::None) {
            List::None => List::One(e),
            List::One(first) => List::Many(vec![first, e]),
            List::Many(mut v) => {
                v.push(e);
                List::Many(v)
            }
        };
    }

    /// Takes entry `i` out of the list.
    fn take(&mut self, i: usize) -> Option<Entry<F>> {
        match mem::replace(self, List::None) {
            List::None => None,
            List::One(e) => Some(e),
            List::Many(mut v) => {
                let e = (i < v.len()).then(|| v.remove(i));
                if !v.is_empty() {
                    *self = List::Many(v);
                }
                e
            }
        }
    }

    /// Drops the entries marked removed whose callback is back in the list
    /// (not running); returns them, to be dropped outside the borrow.
    fn purge(&mut self) -> Vec<Box<F>> {
        let mut out = Vec::new();
        match self {
            List::None => {}
            List::One(e) => {
                if e.removed_at.is_some() && e.f.is_some() {
                    if let List::One(e) = mem::replace(self, List::None) {
                        out.extend(e.f);
                    }
                }
            }
            List::Many(v) => {
                let mut i = 0;
                while i < v.len() {
                    if v[i].removed_at.is_some() && v[i].f.is_some() {
                        out.extend(v.remove(i).f);
                    } else {
                        i += 1;
                    }
                }
                if v.is_empty() {
                    *self = List::None;
                }
            }
        }
        out
    }
}

/// The listeners of one event. `F` is the callback's unsized type, such as
/// `dyn FnMut(&[u8])`.
pub(crate) struct Listeners<F: ?Sized> {
    list: RefCell<List<F>>,
    next_id: Cell<u32>,
    /// How many deliveries of this event are under way (an event can be
    /// emitted again from inside a listener).
    emitting: Cell<u32>,
    /// How many deliveries have begun: a delivery calls a removed listener
    /// only if it was removed after the delivery began.
    epoch: Cell<u32>,
}

impl<F: ?Sized> Default for Listeners<F> {
    fn default() -> Self {
        Listeners {
            list: RefCell::new(List::None),
            next_id: Cell::new(0),
            emitting: Cell::new(0),
            epoch: Cell::new(0),
        }
    }
}

impl<F: ?Sized> Listeners<F> {
    /// Adds a listener (Node's `on`); returns its id.
    pub(crate) fn add(&self, f: Box<F>) -> u32 {
        self.insert(f, false)
    }

    /// Adds a one-shot listener (Node's `once`); returns its id.
    pub(crate) fn add_once(&self, f: Box<F>) -> u32 {
        self.insert(f, true)
    }

    fn insert(&self, f: Box<F>, once: bool) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        self.list.borrow_mut().push(Entry {
            f: Some(f),
            id,
            once,
            removed_at: None,
        });
        id
    }

    /// Removes listener `id`; `true` if it was there. During a delivery
    /// that still owes it a call, it is only marked, and the call happens
    /// (the snapshot rule).
    pub(crate) fn remove(&self, id: u32) -> bool {
        let dropped = {
            let mut list = self.list.borrow_mut();
            let emitting = self.emitting.get() > 0;
            let Some(e) = list
                .entries()
                .iter_mut()
                .find(|e| e.id == id && e.removed_at.is_none())
            else {
                return false;
            };
            e.removed_at = Some(self.epoch.get());
            if emitting {
                return true;
            }
            list.purge()
        };
        drop(dropped); // outside the borrow: its captures may use this list
        true
    }

    /// Whether any listener is there.
    pub(crate) fn is_empty(&self) -> bool {
        let mut list = self.list.borrow_mut();
        !list.entries().iter().any(|e| e.removed_at.is_none())
    }

    /// How many listeners are there (Node's `listenerCount`).
    pub(crate) fn len(&self) -> usize {
        let mut list = self.list.borrow_mut();
        list.entries()
            .iter()
            .filter(|e| e.removed_at.is_none())
            .count()
    }

    /// Removes every listener (Node's `removeAllListeners`); they are
    /// dropped after the list is released, or marked if an event is being
    /// delivered.
    pub(crate) fn clear(&self) {
        let dropped = {
            let mut list = self.list.borrow_mut();
            let now = self.epoch.get();
            for e in list.entries() {
                e.removed_at.get_or_insert(now);
            }
            if self.emitting.get() > 0 {
                return;
            }
            mem::replace(&mut *list, List::None)
        };
        drop(dropped);
    }

    /// Delivers one event: calls `call` with each listener present when it
    /// began, in the order they were added. Returns how many were called
    /// (0: nobody listens, which the caller may treat as Node treats an
    /// `'error'` without a listener).
    pub(crate) fn emit(&self, mut call: impl FnMut(&mut F)) -> usize {
        // The snapshot: ids below `end` were there when the event began.
        // Ids grow in insertion order, so "the next entry after the last
        // one called" is a scan for the smallest larger id.
        let end = self.next_id.get();
        let epoch = self.epoch.get().wrapping_add(1);
        self.epoch.set(epoch);
        let mut called = 0;
        let mut last: Option<u32> = None;
        self.emitting.set(self.emitting.get() + 1);
        let _done = EmitGuard(self);
        loop {
            let taken = {
                let mut list = self.list.borrow_mut();
                let next = list.entries().iter_mut().find(|e| {
                    e.f.is_some()
                        && e.id < end
                        && last.map_or(true, |l| e.id > l)
                        && e.removed_at.map_or(true, |r| r >= epoch)
                });
                match next {
                    Some(e) => {
                        last = Some(e.id);
                        if e.once {
                            // Node's `once`: off the list before it runs.
                            e.removed_at.get_or_insert(epoch);
                        }
                        e.f.take().map(|f| (e.id, e.once, f))
                    }
                    None => None,
                }
            };
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

    /// Puts a listener back after its call. A one-shot listener, or one
    /// removed during its call, leaves the list instead and is dropped
    /// outside the borrow.
    fn put_back(&self, id: u32, once: bool, f: Box<F>) {
        let spare = {
            let mut list = self.list.borrow_mut();
            let pos = list.entries().iter().position(|e| e.id == id);
            match pos {
                Some(i) if !once && list.entries()[i].removed_at.is_none() => {
                    list.entries()[i].f = Some(f);
                    None
                }
                Some(i) => {
                    let entry = list.take(i);
                    Some((f, entry))
                }
                None => Some((f, None)),
            }
        };
        drop(spare);
    }
}

/// Ends a delivery; the outermost one drops what was removed during it.
struct EmitGuard<'a, F: ?Sized>(&'a Listeners<F>);

impl<F: ?Sized> Drop for EmitGuard<'_, F> {
    fn drop(&mut self) {
        let n = self.0.emitting.get() - 1;
        self.0.emitting.set(n);
        if n == 0 {
            let dropped = match self.0.list.try_borrow_mut() {
                Ok(mut list) => list.purge(),
                Err(_) => return,
            };
            drop(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::Listeners;

    type Cb = dyn FnMut(u32);

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
