//! Time as futures: [`sleep`], [`sleep_until`], [`sleep_with_signal`],
//! [`timeout`], [`interval`] and [`yield_now`].
//!
//! A [`Sleep`] arms a loop timer (a ref'd `set_timeout`, so it keeps the
//! loop alive) on its first poll and clears it when dropped: dropping the
//! future, for instance when a [`timeout`] or an abort wins, cancels it.
//! An [`Interval`] arms a ref'd `set_interval` on its first tick and
//! clears it when dropped.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::abort::{AbortError, AbortSignal};
use crate::timers::{set_interval, set_timeout, Timeout};

struct SleepState {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// `None`: too far away to represent, never due.
    deadline: Option<Instant>,
    timer: Option<Timeout>,
    state: Rc<SleepState>,
}

/// Completes after `d` (Node's `await setTimeout(ms)` from
/// `timers/promises`). The timer is armed on the first poll, with the time
/// left until `now + d` (now being when `sleep` was called); as with
/// `set_timeout`, under 1 ms counts as 1 ms.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// evloop::block_on(async {
///     evloop::task::sleep(Duration::from_millis(5)).await;
/// })?;
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Panics
/// When first polled, if no event loop is current on this thread.
pub fn sleep(d: Duration) -> Sleep {
    Sleep::new(Instant::now().checked_add(d))
}

/// Completes at `deadline` (at once, after one timer turn, if it has
/// passed). See [`sleep`].
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_millis(3);
/// evloop::block_on(evloop::task::sleep_until(deadline))?;
/// assert!(Instant::now() >= deadline);
/// # Ok::<(), evloop::Error>(())
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(Some(deadline))
}

impl Sleep {
    fn new(deadline: Option<Instant>) -> Sleep {
        Sleep {
            deadline,
            timer: None,
            state: Rc::new(SleepState {
                fired: Cell::new(false),
                waker: RefCell::new(None),
            }),
        }
    }

    /// When it completes (`None` if that is too far away to represent).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether its timer has fired.
    pub fn is_elapsed(&self) -> bool {
        self.state.fired.get()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.state.fired.get() {
            return Poll::Ready(());
        }
        {
            let mut w = this.state.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if this.timer.is_none() {
            let delay = match this.deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            let state = this.state.clone();
            this.timer = Some(set_timeout(delay, move || {
                state.fired.set(true);
                let w = state.waker.borrow_mut().take();
                if let Some(w) = w {
                    w.wake();
                }
            }));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.clear();
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}

/// The future of [`sleep_with_signal`].
#[must_use = "futures do nothing unless awaited"]
pub struct SleepWithSignal {
    deadline: Option<Instant>,
    signal: AbortSignal,
    timer: Option<Timeout>,
    state: Rc<SleepState>,
}

/// [`sleep`], abortable (Node's `await setTimeout(ms, undefined,
/// { signal })` from `timers/promises`): `Ok(())` after `d`, or
/// `Err(AbortError)` with the signal's reason if `signal` aborts first.
///
/// What an abort releases: the timer, cleared inside the abort itself
/// (not when the task next runs), so it no longer keeps the loop alive;
/// the awaiting task is woken and gets the error. If `signal` has already
/// aborted when the future is first polled, no timer is armed and it
/// completes with the error at once. An abort after the timer fired does
/// nothing: the sleep completes with `Ok`. Dropping the future clears the
/// timer and removes its listener from `signal`.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortController;
///
/// evloop::run(|| {
///     let controller = AbortController::new();
///     let signal = controller.signal();
///     evloop::spawn(async move {
///         let r = evloop::task::sleep_with_signal(Duration::from_secs(3600), &signal).await;
///         assert!(r.unwrap_err().reason().is_aborted());
///     });
///     evloop::set_timeout(Duration::from_millis(2), move || controller.abort(None));
/// })
/// .unwrap(); // in about 2 ms, not an hour
/// ```
///
/// # Panics
/// When first polled, if no event loop is current on this thread.
pub fn sleep_with_signal(d: Duration, signal: &AbortSignal) -> SleepWithSignal {
    SleepWithSignal {
        deadline: Instant::now().checked_add(d),
        signal: signal.clone(),
        timer: None,
        state: Rc::new(SleepState {
            fired: Cell::new(false),
            waker: RefCell::new(None),
        }),
    }
}

impl SleepWithSignal {
    /// When it completes, unless aborted (`None` if that is too far away
    /// to represent).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether its timer has fired.
    pub fn is_elapsed(&self) -> bool {
        self.state.fired.get()
    }
}

impl Future for SleepWithSignal {
    type Output = Result<(), AbortError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Completion wins over a later abort.
        if this.state.fired.get() {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = this.signal.reason() {
            if let Some(t) = this.timer.take() {
                t.clear();
            }
            return Poll::Ready(Err(AbortError::new(reason)));
        }
        {
            let mut w = this.state.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if this.timer.is_none() {
            let delay = match this.deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            let (fired, aborted) = (this.state.clone(), this.state.clone());
            this.timer = crate::abort::arm_timeout(
                delay,
                &this.signal,
                move || {
                    fired.fired.set(true);
                    let w = fired.waker.borrow_mut().take();
                    if let Some(w) = w {
                        w.wake();
                    }
                },
                move |_| {
                    let w = aborted.waker.borrow_mut().take();
                    if let Some(w) = w {
                        w.wake();
                    }
                },
            );
        }
        Poll::Pending
    }
}

impl Drop for SleepWithSignal {
    fn drop(&mut self) {
        // Clearing drops the timer's closure, which removes the listener.
        if let Some(t) = self.timer.take() {
            t.clear();
        }
    }
}

impl fmt::Debug for SleepWithSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SleepWithSignal")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .field("signal", &self.signal)
            .finish()
    }
}

/// The error of a [`timeout`] whose time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

impl From<Elapsed> for crate::promise::Rejection {
    fn from(e: Elapsed) -> Self {
        crate::promise::Rejection::new(e)
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct WithTimeout<F> {
    fut: Pin<Box<F>>,
    sleep: Sleep,
}

/// Runs `fut` (a future or anything `IntoFuture`, such as a
/// [`Promise`](crate::promise::Promise)) for at most `d`: its output, or
/// `Err(Elapsed)` if the time ran out first. On elapse, `fut` is dropped
/// when the `WithTimeout` is (releasing what it holds); on completion the
/// timer is cleared.
///
/// ```
/// use std::time::Duration;
/// use evloop::task::{sleep, timeout, Elapsed};
///
/// evloop::block_on(async {
///     let slow = timeout(Duration::from_millis(2), sleep(Duration::from_secs(60)));
///     assert_eq!(slow.await, Err(Elapsed));
///     let fast = timeout(Duration::from_secs(60), async { 7 });
///     assert_eq!(fast.await, Ok(7));
/// })?;
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Panics
/// When first polled, if no event loop is current on this thread.
pub fn timeout<F: IntoFuture>(d: Duration, fut: F) -> WithTimeout<F::IntoFuture> {
    WithTimeout {
        fut: Box::pin(fut.into_future()),
        sleep: sleep(d),
    }
}

impl<F: Future> Future for WithTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(v) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for WithTimeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithTimeout")
            .field("sleep", &self.sleep)
            .finish()
    }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug, Default)]
pub struct YieldNow {
    yielded: bool,
}

/// Gives way for one microtask hop, as JavaScript's `await null`.
///
/// The task wakes itself and is polled again from a microtask queued at the
/// end of the microtask queue: microtasks (promise reactions, other tasks)
/// already queued run first. It does **not** yield to timers, I/O or
/// immediates, and `next_tick` jobs queued meanwhile run only if the task
/// was not already inside the microtask drain (Node's rule: ticks run when
/// the microtask queue is empty). So a loop around `yield_now` starves the
/// event loop exactly as `while (true) await null` does; to let I/O and
/// timers in, await [`sleep`] or a `set_immediate` promise.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What an [`Interval`] and its loop timer share.
#[derive(Default)]
struct IntervalState {
    /// When the timer last fired and the tick was not taken yet.
    fired: Cell<Option<Instant>>,
    waker: RefCell<Option<Waker>>,
}

/// A stream of ticks every `period`: see [`interval`].
#[must_use = "an interval does nothing unless ticked"]
pub struct Interval {
    period: Duration,
    /// Armed by the first [`tick`](Interval::tick).
    timer: Option<crate::timers::Interval>,
    /// The first tick has been taken.
    started: bool,
    state: Rc<IntervalState>,
}

/// A ticker for `period` (under 1 ms counts as 1 ms, as with
/// `set_interval`), in tokio's shape: `interval.tick().await` in a loop.
///
/// **The first tick completes immediately**, as tokio's `interval`; the
/// loop timer (a ref'd [`set_interval`], so it keeps the loop alive from
/// then until the `Interval` is dropped) is armed by that first tick, and
/// each later tick completes when it fires, at least `period` after the
/// previous one. Missed ticks are not queued: if the
/// task was busy for several periods, the next `tick` completes once, at
/// once, and the following one waits for the timer again (JavaScript's
/// `setInterval` never stacks up callbacks either; tokio's
/// `MissedTickBehavior::Skip` is the nearest). Dropping the `Interval`
/// clears its timer.
///
/// ```
/// use std::time::Duration;
///
/// evloop::block_on(async {
///     let mut every = evloop::task::interval(Duration::from_millis(2));
///     for _ in 0..3 {
///         every.tick().await; // at once, then every 2 ms
///     }
/// })?;
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Panics
/// On the first tick, if no event loop is current on this thread.
pub fn interval(period: Duration) -> Interval {
    Interval {
        period,
        timer: None,
        started: false,
        state: Rc::default(),
    }
}

impl Interval {
    /// Waits for the next tick and returns when it happened: the time of
    /// the call for the first tick, else the loop's time when the timer
    /// fired ([`evloop::now`](crate::now)).
    ///
    /// Cancel-safe: dropping the future before it completes loses no tick.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The poll behind [`tick`](Interval::tick), for hand-written futures.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if !self.started {
            let state = self.state.clone();
            self.timer = Some(set_interval(self.period, move || {
                state.fired.set(Some(crate::now()));
                let w = state.waker.borrow_mut().take();
                if let Some(w) = w {
                    w.wake();
                }
            }));
            self.started = true;
            return Poll::Ready(Instant::now());
        }
        if let Some(at) = self.state.fired.take() {
            return Poll::Ready(at);
        }
        let mut w = self.state.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The period it was made with.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.clear();
        }
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("armed", &self.timer.is_some())
            .finish()
    }
}
