//! [`InlineFn`]: a callback stored like `Box<dyn FnMut()>`, but with small
//! closures kept inline instead of in their own allocation.
//!
//! A timer's closure typically captures a pointer or two (an `Rc`, a
//! promise resolver). Boxing it costs a `malloc` when the timer is armed, a
//! `free` when it goes away, and a pointer chase when it runs. An
//! `InlineFn` is 24 bytes: a pointer to a static table of functions for
//! the closure's type, and 16 bytes that hold the closure itself when it
//! fits (at most 16 bytes, aligned to at most 8), or else a `Box` of it.
//!
//! It also keeps `FnOnce` closures: calling one moves it out and leaves
//! the `InlineFn` empty, so a second call does nothing (what `set_timeout`
//! needs after a `refresh`), without the `Option` wrapper a `Box<dyn
//! FnMut()>` would need.
//!
//! This is the only `unsafe` in the timers: type erasure by hand, as `Box<dyn
//! Trait>` does it. The invariant every block relies on is stated on
//! [`InlineFn`]; the unit tests below run under Miri (`scripts/miri.sh`).
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr;

/// The inline storage: 16 bytes, aligned like a pointer.
type Buf = MaybeUninit<[usize; 2]>;

/// What an `InlineFn` knows about the closure it holds.
struct VTable {
    /// Runs the closure stored at the pointer. For a `once` closure, moves
    /// it out of the storage first: the caller must have marked the
    /// storage empty before calling.
    call: unsafe fn(*mut u8),
    /// Drops the closure stored at the pointer in place.
    drop: unsafe fn(*mut u8),
    /// Calling consumes the closure (`FnOnce`).
    once: bool,
}

/// The table of an `InlineFn` that holds nothing (a consumed `FnOnce`).
static EMPTY: VTable = VTable {
    call: nothing,
    drop: nothing,
    once: false,
};

fn nothing(_: *mut u8) {}

/// Whether a value of type `T` can live in `Buf`.
const fn fits<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<Buf>() && mem::align_of::<T>() <= mem::align_of::<Buf>()
}

/// The tables for closures of type `F` (stored inline, `F` fits `Buf`).
struct Table<F>(PhantomData<F>);

impl<F: FnMut()> Table<F> {
    const MUT: VTable = VTable {
        call: call_mut::<F>,
        drop: drop_at::<F>,
        once: false,
    };
}

impl<F: FnOnce()> Table<F> {
    const ONCE: VTable = VTable {
        call: call_once::<F>,
        drop: drop_at::<F>,
        once: true,
    };
}

/// # Safety
/// `p` points to a live, properly aligned `F` that nothing else uses
/// during the call.
unsafe fn call_mut<F: FnMut()>(p: *mut u8) {
    // SAFETY: guaranteed by the caller (see above).
    let f = unsafe { &mut *p.cast::<F>() };
    f()
}

/// # Safety
/// `p` points to a live, properly aligned `F`, which this call takes
/// ownership of: the caller must never use or drop it again.
unsafe fn call_once<F: FnOnce()>(p: *mut u8) {
    // SAFETY: guaranteed by the caller (see above); after this read the
    // closure is owned here only, and dropped (or consumed) by `f()`.
    let f = unsafe { ptr::read(p.cast::<F>()) };
    f()
}

/// # Safety
/// `p` points to a live, properly aligned `F` that is never used again.
unsafe fn drop_at<F>(p: *mut u8) {
    // SAFETY: guaranteed by the caller (see above).
    unsafe { ptr::drop_in_place(p.cast::<F>()) }
}

/// A type-erased callback: small closures inline, larger or over-aligned
/// ones boxed.
///
/// Invariant: `data` holds a live value of the closure type that `vtable`
/// was made for (`Table::<F>::MUT` or `ONCE`, with `F` fitting `Buf`), or
/// `vtable` is `EMPTY` and `data` holds nothing to drop. Every `unsafe`
/// block below relies on it, and every write of `vtable` or `data` keeps
/// it.
pub(crate) struct InlineFn {
    vtable: &'static VTable,
    data: Buf,
    /// The closure need not be `Send` or `Sync`, so this is neither.
    _not_send: PhantomData<*mut ()>,
}

impl InlineFn {
    /// Stores a closure that may be called any number of times.
    #[inline]
    pub(crate) fn new_mut<F: FnMut() + 'static>(f: F) -> Self {
        if fits::<F>() {
            Self::store(f, &Table::<F>::MUT)
        } else {
            // `Box<F>` is one pointer: it always fits.
            Self::store(Box::new(f), &Table::<Box<F>>::MUT)
        }
    }

    /// Stores a closure that runs at most once: later calls do nothing.
    #[inline]
    pub(crate) fn new_once<F: FnOnce() + 'static>(f: F) -> Self {
        if fits::<F>() {
            Self::store(f, &Table::<F>::ONCE)
        } else {
            Self::store(Box::new(f), &Table::<Box<F>>::ONCE)
        }
    }

    /// Moves `f` into the inline storage, under `vtable`, which must be
    /// one of `T`'s tables.
    #[inline]
    fn store<T>(f: T, vtable: &'static VTable) -> Self {
        assert!(fits::<T>(), "InlineFn: a value that does not fit inline");
        let mut data = Buf::uninit();
        // SAFETY: `T` fits `Buf` in size and alignment (checked just
        // above, at compile time in practice), so the write is in bounds
        // and aligned; `data` is fresh, nothing is overwritten.
        unsafe { ptr::write(data.as_mut_ptr().cast::<T>(), f) };
        InlineFn {
            vtable,
            data,
            _not_send: PhantomData,
        }
    }

    /// Runs the closure. A `FnOnce` closure is consumed by its first call;
    /// calling again does nothing. If the closure panics, it (or, for a
    /// `FnOnce`, what the call had not consumed) is still dropped exactly
    /// once.
    #[inline]
    pub(crate) fn call(&mut self) {
        let vtable = self.vtable;
        if vtable.once {
            // Mark empty first: `call` moves the closure out, and from
            // here on (even if it panics) `self` must not drop it.
            self.vtable = &EMPTY;
        }
        // SAFETY: by the invariant `data` holds the closure `vtable` is
        // for; `&mut self` means nothing else uses it during the call. A
        // `once` table's `call` takes ownership, which is why `self` was
        // marked empty above.
        unsafe { (vtable.call)(self.data.as_mut_ptr().cast()) }
    }

    /// Whether the closure was stored inline (not boxed); for tests.
    #[cfg(test)]
    fn is_inline<F>() -> bool {
        fits::<F>()
    }
}

impl Drop for InlineFn {
    fn drop(&mut self) {
        let vtable = mem::replace(&mut self.vtable, &EMPTY);
        // SAFETY: by the invariant `data` holds the closure `vtable` is
        // for; `self` is marked empty first, so it is dropped once.
        unsafe { (vtable.drop)(self.data.as_mut_ptr().cast()) }
    }
}

impl std::fmt::Debug for InlineFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if ptr::eq(self.vtable, &EMPTY) {
            "InlineFn(empty)"
        } else {
            "InlineFn"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    /// Counts its drops in a shared cell.
    struct Tracker(Rc<Cell<usize>>);
    impl Drop for Tracker {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(mem::size_of::<InlineFn>(), 24);
        assert_eq!(mem::size_of::<Option<InlineFn>>(), 24);
        assert!(InlineFn::is_inline::<(Rc<u8>, Rc<u8>)>());
        assert!(InlineFn::is_inline::<()>());
        assert!(!InlineFn::is_inline::<[u64; 3]>());
    }

    #[test]
    fn mut_closure_runs_each_call_and_drops_once() {
        let drops = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0));
        let (t, c) = (Tracker(drops.clone()), calls.clone());
        let mut f = InlineFn::new_mut(move || {
            let _ = &t;
            c.set(c.get() + 1);
        });
        f.call();
        f.call();
        assert_eq!(calls.get(), 2);
        assert_eq!(drops.get(), 0);
        drop(f);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn once_closure_runs_once_and_drops_once() {
        let drops = Rc::new(Cell::new(0));
        let calls = Rc::new(Cell::new(0));
        let (t, c) = (Tracker(drops.clone()), calls.clone());
        let mut f = InlineFn::new_once(move || {
            drop(t);
            c.set(c.get() + 1);
        });
        f.call();
        assert_eq!((calls.get(), drops.get()), (1, 1));
        f.call();
        drop(f);
        assert_eq!((calls.get(), drops.get()), (1, 1));
    }

    #[test]
    fn never_called_is_dropped() {
        let drops = Rc::new(Cell::new(0));
        let t = Tracker(drops.clone());
        drop(InlineFn::new_once(move || drop(t)));
        assert_eq!(drops.get(), 1);
        let t = Tracker(drops.clone());
        drop(InlineFn::new_mut(move || {
            let _ = &t;
        }));
        assert_eq!(drops.get(), 2);
    }

    #[test]
    fn moved_around_then_called() {
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        let f = InlineFn::new_mut(move || h.set(h.get() + 1));
        let mut v = vec![f];
        v.reserve(100); // moves the closure's bytes
        let mut f = v.pop().unwrap();
        f.call();
        assert_eq!(hits.get(), 1);
    }

    #[test]
    fn panicking_callbacks_drop_captures_once() {
        let drops = Rc::new(Cell::new(0));
        // FnOnce: the call consumes the closure; unwinding drops its captures.
        let t = Tracker(drops.clone());
        let mut f = InlineFn::new_once(move || {
            let _t = t;
            panic!("boom");
        });
        assert!(catch_unwind(AssertUnwindSafe(|| f.call())).is_err());
        assert_eq!(drops.get(), 1);
        drop(f);
        assert_eq!(drops.get(), 1);
        // FnMut: the closure survives its panic and is dropped with `f`.
        let t = Tracker(drops.clone());
        let mut f = InlineFn::new_mut(move || {
            let _ = &t;
            panic!("boom");
        });
        assert!(catch_unwind(AssertUnwindSafe(|| f.call())).is_err());
        assert_eq!(drops.get(), 1);
        drop(f);
        assert_eq!(drops.get(), 2);
    }

    #[test]
    fn big_and_over_aligned_closures_are_boxed() {
        #[derive(Clone, Copy)]
        #[repr(align(32))]
        struct Aligned(u8);
        let drops = Rc::new(Cell::new(0));
        let sum = Rc::new(Cell::new(0u64));

        let (t, s, big) = (Tracker(drops.clone()), sum.clone(), [1u64, 2, 3, 4]);
        assert!(!InlineFn::is_inline::<(Tracker, Rc<Cell<u64>>, [u64; 4])>());
        let mut f = InlineFn::new_mut(move || {
            let _ = &t;
            s.set(s.get() + big.iter().sum::<u64>());
        });
        f.call();
        f.call();
        assert_eq!(sum.get(), 20);
        drop(f);
        assert_eq!(drops.get(), 1);

        let (t, s, a) = (Tracker(drops.clone()), sum.clone(), Aligned(7));
        assert!(!InlineFn::is_inline::<Aligned>());
        let mut f = InlineFn::new_once(move || {
            let _t = t;
            assert_eq!(&a as *const Aligned as usize % 32, 0);
            s.set(s.get() + u64::from(a.0));
        });
        f.call();
        f.call();
        assert_eq!(sum.get(), 27);
        assert_eq!(drops.get(), 2);
        drop(f);
        assert_eq!(drops.get(), 2);

        // A boxed closure that is never called is freed with its captures.
        let (t, big) = (Tracker(drops.clone()), [0u8; 64]);
        drop(InlineFn::new_once(move || {
            let _t = t;
            let _ = big;
        }));
        assert_eq!(drops.get(), 3);
    }

    #[test]
    fn zero_sized_closures() {
        fn bump() {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });
        assert_eq!(mem::size_of_val(&bump), 0);
        let mut f = InlineFn::new_mut(bump);
        f.call();
        f.call();
        let mut g = InlineFn::new_once(|| {
            bump();
        });
        g.call();
        g.call();
        assert_eq!(COUNT.with(Cell::get), 3);
    }
}
