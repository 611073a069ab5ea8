//! Per-loop storage: how the layers above the loop keep their state in it
//! without the loop knowing their types.
//!
//! A layer declares a key, as it would declare a `thread_local!`:
//!
//! ```ignore
//! static TASKS: LoopLocal<Tasks> = LoopLocal::new();
//! let tasks: &Tasks = TASKS.get(loop_state); // created on first use
//! ```
//!
//! and gets one value per loop, created on first use with
//! [`PerLoop::new`], living as long as the loop. At teardown the loop asks
//! every value, in the order they were created, to
//! [`release`](PerLoop::release) what it holds of user code (futures,
//! closures), round after round with the other queues until nothing is
//! left; when the loop's state is dropped the values themselves are
//! dropped, newest first.
//!
//! A lookup is an array index and a null check: no hashing, no borrow, no
//! dynamic type check (the executor looks its tasks up on every wake and
//! poll; a `downcast_ref` there cost ~12% of a spawned task's
//! instructions). The one `unsafe` below is that pointer's dereference.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::LoopState;

/// How many keys the crate may declare (it declares 8: the executor, the
/// rejection tracker, signals, async handles, abort senders, inotify,
/// message ports, terminals; room for more).
const MAX_SLOTS: usize = 16;

/// The next free slot index, process-wide: each key takes one on first use.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// A value a layer keeps once per loop (see the [module docs](self)).
pub(crate) trait PerLoop: Any {
    /// The value for a new loop.
    fn new(state: &LoopState) -> Self;

    /// At teardown, with the loop still current: hands over what this
    /// value holds of user code, for the loop to drop (catching a panicking
    /// destructor). Called again each round while anything was released,
    /// so what a destructor creates is released too.
    fn release(&self) -> Released {
        Released::NOTHING
    }
}

/// What a [`PerLoop::release`] hands over: a name for the log, how many
/// things, and the things, dropped by the loop.
pub(crate) struct Released {
    pub(crate) what: &'static str,
    pub(crate) count: usize,
    pub(crate) garbage: Option<Box<dyn Any>>,
}

impl Released {
    /// Nothing to release.
    pub(crate) const NOTHING: Released = Released {
        what: "",
        count: 0,
        garbage: None,
    };

    /// `count` things of kind `what`, held by `garbage`.
    pub(crate) fn new(what: &'static str, count: usize, garbage: impl Any) -> Released {
        Released {
            what,
            count,
            garbage: Some(Box::new(garbage)),
        }
    }
}

/// The key of a per-loop value of type `T`: declare it as a `static`.
pub(crate) struct LoopLocal<T> {
    /// The slot index, taken from [`NEXT_SLOT`] on first use; `usize::MAX`
    /// until then.
    index: AtomicUsize,
    _value: PhantomData<fn() -> T>,
}

impl<T: PerLoop> LoopLocal<T> {
    /// A key (no slot is taken until it is first used).
    pub(crate) const fn new() -> Self {
        LoopLocal {
            index: AtomicUsize::new(usize::MAX),
            _value: PhantomData,
        }
    }

    /// This loop's value, created on first use.
    #[inline]
    pub(crate) fn get<'a>(&'static self, state: &'a LoopState) -> &'a T {
        let i = self.index();
        let ptr = state.slots.ptrs[i].get();
        if ptr.is_null() {
            return self.create(state);
        }
        #[allow(unsafe_code)]
        // SAFETY: `ptrs[i]` is set only by `create` of this key (each index
        // belongs to one key, and each key to one `T`), to the address of
        // the `T` inside the `Box` that `cells[i]` owns. That box is never
        // moved or dropped while the loop's state is shared: only
        // `Slots::drop_all(&mut self)` takes it, and it nulls the pointer
        // first. So the pointer is valid for as long as `state` is
        // borrowed, and only shared references to the value exist.
        unsafe {
            &*ptr.cast::<T>()
        }
    }

    /// This loop's value if it was created.
    pub(crate) fn try_get<'a>(&'static self, state: &'a LoopState) -> Option<&'a T> {
        let value = state.slots.cells[self.index()].get()?;
        value.value.downcast_ref::<T>()
    }

    #[inline]
    fn index(&'static self) -> usize {
        let i = self.index.load(Ordering::Relaxed);
        if i != usize::MAX {
            return i;
        }
        self.take_index()
    }

    #[cold]
    fn take_index(&'static self) -> usize {
        let fresh = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        assert!(fresh < MAX_SLOTS, "more than {MAX_SLOTS} per-loop keys");
        match self
            .index
            .compare_exchange(usize::MAX, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            // Another thread's loop took one for this key first (the
            // fresh index is wasted: there are few keys).
            Err(theirs) => theirs,
        }
    }

    #[cold]
    fn create<'a>(&'static self, state: &'a LoopState) -> &'a T {
        let i = self.index();
        let value = T::new(state);
        let stored = Stored {
            value: Box::new(value),
            release: release_of::<T>,
        };
        let cell = &state.slots.cells[i];
        if cell.set(stored).is_err() {
            // `T::new` used this very key: keep the value it made.
            log::debug!("per-loop value created twice; the first is kept");
        } else {
            state.slots.order.borrow_mut().push(i);
        }
        let value = cell
            .get()
            .and_then(|s| s.value.downcast_ref::<T>())
            .expect("set above, with this key's type");
        state.slots.ptrs[i].set((value as *const T).cast());
        value
    }
}

/// A stored value and how to release it.
struct Stored {
    value: Box<dyn Any>,
    release: fn(&dyn Any) -> Released,
}

fn release_of<T: PerLoop>(value: &dyn Any) -> Released {
    value
        .downcast_ref::<T>()
        .map_or(Released::NOTHING, PerLoop::release)
}

/// A loop's per-loop values.
pub(crate) struct Slots {
    cells: [OnceCell<Stored>; MAX_SLOTS],
    /// The address of each value inside its box (null until created): the
    /// fast path of [`LoopLocal::get`].
    ptrs: [Cell<*const ()>; MAX_SLOTS],
    /// Slot indices in creation order.
    order: RefCell<Vec<usize>>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            cells: Default::default(),
            ptrs: std::array::from_fn(|_| Cell::new(std::ptr::null())),
            order: RefCell::default(),
        }
    }
}

impl Slots {
    /// Asks each value, in creation order, to release what it holds.
    pub(super) fn release_each(&self, mut f: impl FnMut(Released)) {
        let mut n = 0;
        // By index: a release may create another value (pushed at the end).
        loop {
            let Some(i) = self.order.borrow().get(n).copied() else {
                return;
            };
            n += 1;
            if let Some(stored) = self.cells[i].get() {
                f((stored.release)(&*stored.value));
            }
        }
    }

    /// Drops the values, newest first; each drop is handed to `f` (which
    /// catches a panicking destructor).
    pub(super) fn drop_all(&mut self, mut f: impl FnMut(Box<dyn Any>)) {
        let order = std::mem::take(self.order.get_mut());
        for i in order.into_iter().rev() {
            self.ptrs[i].set(std::ptr::null());
            if let Some(stored) = self.cells[i].take() {
                f(stored.value);
            }
        }
    }
}
