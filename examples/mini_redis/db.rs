//! The keyspace: string keys to string values, with expiry.
//!
//! Expiry works as in Redis, in two ways. Lazily: a key past its deadline is
//! deleted when a command touches it, so no command ever sees it. Actively:
//! every key with a deadline is also in an index ordered by deadline, and
//! one loop timer is armed for the earliest; when it fires, it deletes what
//! is due and re-arms for the next, so memory comes back even for keys that
//! are never read again. (Redis samples random keys ten times a second
//! instead; an ordered index costs a little per `EXPIRE` but no scans.)
//!
//! Keys are `Rc<[u8]>` so the index shares them with the map, and times
//! come from the loop's clock (`evloop::now()`, read once per tick).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use evloop::Timeout;

use crate::resp::{parse_i64, push_i64};

/// Keys deleted by one firing of the expiry timer at most; if more are
/// due, it fires again on the next tick, so clients are served meanwhile.
const EXPIRE_BUDGET: usize = 10_000;

/// The database of one server, shared by its connections.
pub type SharedDb = Rc<RefCell<Db>>;

/// A value and its deadline.
#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Option<Instant>,
    /// The key's place in [`Db::slots`].
    slot: usize,
}

/// The bytes of a value.
#[derive(Debug)]
enum Value {
    /// Its own buffer.
    Owned(Vec<u8>),
    /// A range of the buffer a large request was read into, kept instead
    /// of copied (see [`Db::set_shared`]).
    Shared(Rc<Vec<u8>>, Range<usize>),
}

impl Value {
    fn bytes(&self) -> &[u8] {
        match self {
            Value::Owned(v) => v,
            Value::Shared(buf, r) => &buf[r.clone()],
        }
    }
}

/// Why INCR and friends refused.
#[derive(Debug, PartialEq, Eq)]
pub enum IncrError {
    /// The stored value is not a decimal `i64`.
    NotAnInteger,
    /// The result would not fit an `i64`.
    Overflow,
}

/// The keyspace.
#[derive(Debug)]
pub struct Db {
    map: HashMap<Rc<[u8]>, Entry>,
    /// Every key with a deadline, earliest first.
    expiries: BTreeSet<(Instant, Rc<[u8]>)>,
    /// The expiry timer, and the deadline it is armed for.
    timer: Option<(Instant, Timeout)>,
    /// Every key at a fixed place while it exists, for `SCAN`: its cursor
    /// is a place in this list, so a key present for a whole scan is
    /// visited exactly once however the map rehashes. Places of deleted
    /// keys are `None` until reused.
    slots: Vec<Option<Rc<[u8]>>>,
    /// The free places in `slots`.
    free: Vec<usize>,
    /// This database's own handle, for the timer callback.
    me: Weak<RefCell<Db>>,
}

impl Db {
    /// An empty database.
    pub fn new() -> SharedDb {
        Rc::new_cyclic(|me| {
            RefCell::new(Db {
                map: HashMap::new(),
                expiries: BTreeSet::new(),
                timer: None,
                slots: Vec::new(),
                free: Vec::new(),
                me: me.clone(),
            })
        })
    }

    /// How many keys, expired ones not yet deleted included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Deletes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.expiries.clear();
        self.slots = Vec::new();
        self.free = Vec::new();
    }

    /// Deletes `key` if its deadline has passed; returns whether it (still)
    /// exists.
    fn expire_if_due(&mut self, key: &[u8]) -> bool {
        // Most databases in a benchmark have no deadlines at all.
        if self.expiries.is_empty() {
            return self.map.contains_key(key);
        }
        match self.map.get(key) {
            None => false,
            Some(Entry {
                expires: Some(t), ..
            }) if *t <= evloop::now() => {
                self.remove(key);
                false
            }
            Some(_) => true,
        }
    }

    /// The value of a live key.
    pub fn get(&mut self, key: &[u8]) -> Option<&[u8]> {
        if !self.expiries.is_empty() && !self.expire_if_due(key) {
            return None;
        }
        self.map.get(key).map(|e| e.value.bytes())
    }

    /// Whether a live key exists.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.expire_if_due(key)
    }

    /// Stores `value` under `key`. The deadline becomes `expires`, unless
    /// `keep_ttl` (then an existing key keeps its own).
    pub fn set(&mut self, key: &[u8], value: &[u8], expires: Option<Instant>, keep_ttl: bool) {
        // One hash lookup for an existing key; an expired one is replaced
        // as if it were missing, so deleting it first would gain nothing
        // but another lookup.
        if let Some(e) = self.map.get_mut(key) {
            // Overwrite in place: no allocation when the new value fits,
            // but give back a buffer far larger than what it now holds.
            match &mut e.value {
                Value::Owned(v) if v.capacity() <= 2 * value.len() + 64 => {
                    v.clear();
                    v.extend_from_slice(value);
                }
                other => *other = Value::Owned(value.to_vec()),
            }
            let old = e.expires;
            let new = Self::overwritten_expiry(old, expires, keep_ttl);
            if old != new {
                self.change_expiry(key, old, new);
            }
        } else {
            self.insert(key, Value::Owned(value.to_vec()), expires);
        }
    }

    /// [`set`](Db::set) for a value that is `range` of `buf`: the value
    /// keeps the buffer (shared with whatever else is kept from it) rather
    /// than a copy, so a 64 MiB `SET` costs 64 MiB, not twice that.
    pub fn set_shared(
        &mut self,
        key: &[u8],
        buf: Rc<Vec<u8>>,
        range: Range<usize>,
        expires: Option<Instant>,
        keep_ttl: bool,
    ) {
        let value = Value::Shared(buf, range);
        if let Some(e) = self.map.get_mut(key) {
            e.value = value;
            let old = e.expires;
            let new = Self::overwritten_expiry(old, expires, keep_ttl);
            if old != new {
                self.change_expiry(key, old, new);
            }
        } else {
            self.insert(key, value, expires);
        }
    }

    /// A new key.
    fn insert(&mut self, key: &[u8], value: Value, expires: Option<Instant>) {
        let k: Rc<[u8]> = Rc::from(key);
        // Free places past the end (the list was trimmed) are dropped.
        let free = loop {
            match self.free.pop() {
                Some(s) if s >= self.slots.len() => continue,
                other => break other,
            }
        };
        let slot = match free {
            Some(s) => {
                self.slots[s] = Some(k.clone());
                s
            }
            None => {
                self.slots.push(Some(k.clone()));
                self.slots.len() - 1
            }
        };
        self.map.insert(
            k.clone(),
            Entry {
                value,
                expires,
                slot,
            },
        );
        self.reindex(k, None, expires);
    }

    /// The deadline of an overwritten key that had `old`: `expires`,
    /// unless `keep_ttl` and the key was live.
    fn overwritten_expiry(
        old: Option<Instant>,
        expires: Option<Instant>,
        keep_ttl: bool,
    ) -> Option<Instant> {
        let expired = old.is_some_and(|t| t <= evloop::now());
        // KEEPTTL keeps a live key's deadline, not a dead one's.
        if keep_ttl && !expired {
            old
        } else {
            expires
        }
    }

    /// Moves an existing key's deadline from `old` to `new`.
    fn change_expiry(&mut self, key: &[u8], old: Option<Instant>, new: Option<Instant>) {
        if let Some((k, _)) = self.map.get_key_value(key) {
            let k = k.clone();
            if let Some(e) = self.map.get_mut(key) {
                e.expires = new;
            }
            self.reindex(k, old, new);
        }
    }

    /// Frees the place of a deleted key. Free places at the end are
    /// trimmed, so the list shrinks with the keyspace (their entries in
    /// `free` are dropped when popped: a place is only pushed anew once
    /// `free` is empty, so a stale entry never names a live place).
    fn free_slot(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.free.push(slot);
        if slot + 1 == self.slots.len() {
            while self.slots.last().is_some_and(Option::is_none) {
                self.slots.pop();
            }
            if self.slots.capacity() > 2 * self.slots.len() + 1024 {
                self.slots
                    .shrink_to(self.slots.len() + self.slots.len() / 2);
            }
        }
        if self.free.capacity() > 2 * self.free.len() + 1024 {
            self.free.shrink_to(self.free.len() + self.free.len() / 2);
        }
    }

    /// Deletes `key`; returns whether it existed (and was live).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let now = evloop::now();
        match self.map.remove_entry(key) {
            None => false,
            Some((k, e)) => {
                self.free_slot(e.slot);
                if let Some(t) = e.expires {
                    self.expiries.remove(&(t, k));
                    return t > now;
                }
                true
            }
        }
    }

    /// Adds `delta` to the integer stored at `key` (0 if missing), keeping
    /// its deadline, and returns the new value.
    pub fn incr_by(&mut self, key: &[u8], delta: i64) -> Result<i64, IncrError> {
        self.expire_if_due(key);
        let Some(e) = self.map.get_mut(key) else {
            let mut v = Vec::with_capacity(20);
            push_i64(&mut v, delta);
            self.set(key, &v, None, false);
            return Ok(delta);
        };
        let n = parse_i64(e.value.bytes()).ok_or(IncrError::NotAnInteger)?;
        let n = n.checked_add(delta).ok_or(IncrError::Overflow)?;
        let mut v = match std::mem::replace(&mut e.value, Value::Owned(Vec::new())) {
            Value::Owned(v) => v,
            Value::Shared(..) => Vec::with_capacity(20),
        };
        v.clear();
        push_i64(&mut v, n);
        e.value = Value::Owned(v);
        Ok(n)
    }

    /// Sets the deadline of a live key (`None`: no deadline, `PERSIST`);
    /// returns whether the key exists. A deadline already past deletes it.
    pub fn set_expiry(&mut self, key: &[u8], expires: Option<Instant>) -> bool {
        if !self.expire_if_due(key) {
            return false;
        }
        if expires.is_some_and(|t| t <= evloop::now()) {
            self.remove(key);
            return true;
        }
        let (k, e) = self.map.get_key_value(key).expect("live");
        let (k, old) = (k.clone(), e.expires);
        if old != expires {
            self.map.get_mut(key).expect("live").expires = expires;
            self.reindex(k, old, expires);
        }
        true
    }

    /// The time to live of a key: `None` if it does not exist, `Some(None)`
    /// if it has no deadline.
    pub fn ttl(&mut self, key: &[u8]) -> Option<Option<Duration>> {
        if !self.expire_if_due(key) {
            return None;
        }
        let now = evloop::now();
        Some(
            self.map[key]
                .expires
                .map(|t| t.saturating_duration_since(now)),
        )
    }

    /// Moves `key` in the expiry index from deadline `old` to `new`.
    fn reindex(&mut self, key: Rc<[u8]>, old: Option<Instant>, new: Option<Instant>) {
        if let Some(t) = old {
            self.expiries.remove(&(t, key.clone()));
        }
        if let Some(t) = new {
            self.expiries.insert((t, key));
            self.arm_timer();
        }
    }

    /// Makes sure the expiry timer fires by the earliest deadline.
    fn arm_timer(&mut self) {
        let Some((first, _)) = self.expiries.first() else {
            return;
        };
        let first = *first;
        if matches!(&self.timer, Some((at, _)) if *at <= first) {
            return; // fires in time; it re-arms for what is left
        }
        if let Some((_, old)) = self.timer.take() {
            old.clear();
        }
        let me = self.me.clone();
        let delay = first.saturating_duration_since(evloop::now());
        let timer = evloop::set_timeout(delay, move || {
            if let Some(db) = me.upgrade() {
                db.borrow_mut().active_expire();
            }
        });
        // A deadline alone should not keep the server's loop running.
        timer.unref();
        self.timer = Some((first, timer));
    }

    /// The expiry timer: deletes keys that are due, then re-arms.
    fn active_expire(&mut self) {
        self.timer = None;
        let now = evloop::now();
        for _ in 0..EXPIRE_BUDGET {
            match self.expiries.first() {
                Some((t, _)) if *t <= now => {
                    let (_, key) = self.expiries.pop_first().expect("not empty");
                    if let Some(e) = self.map.remove(&key) {
                        self.free_slot(e.slot);
                    }
                }
                _ => break,
            }
        }
        self.arm_timer();
    }

    /// Whether the entry `e` is past its deadline.
    fn is_dead(e: &Entry, now: Instant) -> bool {
        e.expires.is_some_and(|t| t <= now)
    }

    /// Every live key, in no particular order (`KEYS`).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let now = evloop::now();
        self.map
            .iter()
            .filter(move |(_, e)| !Self::is_dead(e, now))
            .map(|(k, _)| &k[..])
    }

    /// One step of `SCAN`: visits the places from `cursor` on until
    /// `count` live keys were given to `visit` (or ten times as many
    /// places were looked at, as Redis bounds its empty buckets), and
    /// returns the cursor to continue from: 0 once the end is reached.
    ///
    /// A key present for the whole scan keeps its place, and the cursor
    /// only moves forward, so such a key is visited exactly once; a key
    /// added or deleted meanwhile may or may not be. A scan ends after at
    /// most as many places as the keyspace ever held at once.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8])) -> u64 {
        let now = evloop::now();
        let Ok(mut at) = usize::try_from(cursor) else {
            return 0;
        };
        let (mut found, mut looked) = (0, 0);
        let max_looked = count.saturating_mul(10);
        while at < self.slots.len() && found < count && looked < max_looked {
            if let Some(k) = &self.slots[at] {
                if self.map.get(k).is_some_and(|e| !Self::is_dead(e, now)) {
                    visit(k);
                    found += 1;
                }
            }
            at += 1;
            looked += 1;
        }
        if at >= self.slots.len() {
            0
        } else {
            at as u64
        }
    }

    /// Keys with a deadline (in the index), for tests and `INFO`-like use.
    pub fn volatile_len(&self) -> usize {
        self.expiries.len()
    }
}
