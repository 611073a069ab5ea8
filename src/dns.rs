//! Name resolution (Node's `dns.lookup`): host name to IP addresses, on
//! the thread pool.
//!
//! `getaddrinfo` blocks (it may read `/etc/hosts`, ask a DNS server, wait
//! for a timeout), so, as in Node, it never runs on the loop thread: each
//! lookup is a pool job, and the callback (or the promise) gets the answer
//! on the loop thread. An IP literal (`"127.0.0.1"`, `"::1"`) is answered
//! without the pool, as Node answers it. This is the resolution every
//! bind and connect of [`net`](crate::net) and
//! [`task::net`](crate::task::net) uses for a host name (see
//! [`ToAddrs`](crate::net::ToAddrs)).
//!
//! Three faces, one error: the callback [`lookup`], the promise
//! [`promises::lookup`], and `promises::lookup(..).await` in async code (a
//! [`Promise`](crate::promise::Promise) is `IntoFuture`; there is no
//! separate future, as for [`fs`](crate::fs)). A name that does not
//! resolve, or has no address of the family asked for, fails with
//! `ErrorKind::NotFound` and a message naming the host (Node's
//! `getaddrinfo ENOTFOUND host`); an empty name is `InvalidInput`.
//!
//! The `_with_signal` forms take an [`AbortSignal`] last: aborting
//! cancels a lookup still queued and answers with the
//! [`AbortError`](crate::abort::AbortError); one already running on a pool
//! thread cannot be interrupted and its result is dropped (see
//! [`queue_work_with_signal`](crate::queue_work_with_signal)).
//!
//! ```
//! use evloop::dns::{self, Family, LookupOptions};
//!
//! evloop::run(|| {
//!     let v4 = LookupOptions { family: Family::Ipv4, all: false };
//!     dns::lookup("localhost", v4, |r| {
//!         assert_eq!(r.unwrap(), ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
//!     });
//! })
//! .unwrap();
//! ```

use std::io::{self, ErrorKind};
use std::net::IpAddr;

use crate::abort::AbortSignal;

/// Which addresses a lookup wants (Node's `family` option: `0`, `4`, `6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 and IPv6 (Node's `0`), in the resolver's order.
    #[default]
    Any,
    /// IPv4 only (Node's `4`).
    Ipv4,
    /// IPv6 only (Node's `6`).
    Ipv6,
}

impl Family {
    fn accepts(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::Ipv4 => ip.is_ipv4(),
            Family::Ipv6 => ip.is_ipv6(),
        }
    }
}

/// The options of a [`lookup`] (Node's `dns.lookup` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LookupOptions {
    /// Which address family to return.
    pub family: Family,
    /// `true`: every address, in the resolver's order (Node's
    /// `all: true`); `false`: the first one only (a one-element list).
    pub all: bool,
}

impl LookupOptions {
    /// Every address of any family.
    pub fn all() -> LookupOptions {
        LookupOptions {
            family: Family::Any,
            all: true,
        }
    }
}

/// Resolves `host` on the thread pool (Node's `dns.lookup(host, options,
/// cb)`); `cb` gets the addresses, duplicates removed, on the loop thread,
/// later, never inside this call: every one if `options.all`, else a list
/// of one (the first). An IP literal is returned as it is, without the
/// pool and whatever the family asked (as Node does). Errors: `NotFound`
/// naming the host when the name does not resolve or has no address of
/// `options.family`; `InvalidInput` for an empty name.
///
/// ```
/// use evloop::dns::{self, LookupOptions};
///
/// evloop::run(|| {
///     dns::lookup("localhost", LookupOptions::all(), |r| {
///         let addrs = r.unwrap();
///         assert!(addrs.iter().all(|ip| ip.is_loopback()));
///     });
///     dns::lookup("no-such-host.invalid", LookupOptions::default(), |r| {
///         assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::NotFound);
///     });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn lookup(
    host: &str,
    options: LookupOptions,
    cb: impl FnOnce(io::Result<Vec<IpAddr>>) + 'static,
) {
    if let Some(r) = at_once(host) {
        crate::next_tick(move || cb(r));
        return;
    }
    let host = host.to_string();
    crate::queue_work(
        move || resolve(&host, options),
        move |r| cb(r.and_then(|r| r)),
    );
}

/// [`lookup`], abortable: an abort before the answer calls `cb` with the
/// [`AbortError`](crate::abort::AbortError) (in a `next_tick`) and cancels
/// the lookup if no pool thread has taken it yet. Already aborted, nothing
/// starts.
///
/// ```
/// use evloop::abort::{is_abort_error, AbortSignal};
/// use evloop::dns::{self, LookupOptions};
///
/// evloop::run(|| {
///     let signal = AbortSignal::abort(None);
///     dns::lookup_with_signal("localhost", LookupOptions::default(), &signal, |r| {
///         assert!(is_abort_error(&r.unwrap_err()));
///     });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn lookup_with_signal(
    host: &str,
    options: LookupOptions,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<Vec<IpAddr>>) + 'static,
) {
    if let Some(r) = at_once(host) {
        // Still abortable until the tick runs, as every pool op is.
        let Some(cb) = signal.bind_callback(cb, || {}) else {
            return;
        };
        crate::next_tick(move || cb(r));
        return;
    }
    let host = host.to_string();
    signal.queue_work_mapped(move || resolve(&host, options), |r| r.and_then(|r| r), cb);
}

/// The answer for an IP literal or an empty name, which need no lookup.
fn at_once(host: &str) -> Option<io::Result<Vec<IpAddr>>> {
    if host.is_empty() {
        return Some(Err(io::Error::new(
            ErrorKind::InvalidInput,
            "dns lookup of an empty host name",
        )));
    }
    // `[::1]` as well as `::1`, as URLs write it.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().ok().map(|ip| Ok(vec![ip]))
}

/// The blocking part, on a pool thread.
fn resolve(host: &str, options: LookupOptions) -> io::Result<Vec<IpAddr>> {
    #[cfg(test)]
    tests::note_thread();
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in crate::net::lookup_host(host, 0)? {
        let ip = addr.ip();
        if options.family.accepts(&ip) && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(io::Error::new(
            ErrorKind::NotFound,
            format!(
                "getaddrinfo ENOTFOUND {host}: no {:?} address",
                options.family
            ),
        ));
    }
    if !options.all {
        ips.truncate(1);
    }
    Ok(ips)
}

/// The promise forms of [`dns`](super) (Node's `dns/promises`); await
/// them in async code.
pub mod promises {
    use std::net::IpAddr;

    use super::LookupOptions;
    use crate::abort::AbortSignal;
    use crate::promise::{promisify, Promise};

    /// [`dns::lookup`](super::lookup) as a promise (Node's
    /// `dnsPromises.lookup`); await it in async code.
    ///
    /// ```
    /// use evloop::dns::{promises as dns, Family, LookupOptions};
    ///
    /// let ips = evloop::block_on(async {
    ///     let v4 = LookupOptions { family: Family::Ipv4, all: true };
    ///     dns::lookup("localhost", v4).await
    /// })
    /// .unwrap()
    /// .unwrap();
    /// assert!(ips.contains(&"127.0.0.1".parse().unwrap()));
    /// ```
    pub fn lookup(host: &str, options: LookupOptions) -> Promise<Vec<IpAddr>> {
        promisify(|done| super::lookup(host, options, done))
    }

    /// [`dns::lookup_with_signal`](super::lookup_with_signal) as a promise:
    /// an abort rejects it with the
    /// [`AbortError`](crate::abort::AbortError).
    pub fn lookup_with_signal(
        host: &str,
        options: LookupOptions,
        signal: &AbortSignal,
    ) -> Promise<Vec<IpAddr>> {
        promisify(|done| super::lookup_with_signal(host, options, signal, done))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    static THREADS: Mutex<Vec<std::thread::ThreadId>> = Mutex::new(Vec::new());

    /// Test hook: where the blocking resolution ran.
    pub(super) fn note_thread() {
        THREADS.lock().unwrap().push(std::thread::current().id());
    }

    #[test]
    fn resolution_runs_on_the_pool() {
        let loop_thread = std::thread::current().id();
        crate::run(move || {
            lookup("localhost", LookupOptions::default(), move |r| {
                assert!(r.is_ok());
                assert_eq!(std::thread::current().id(), loop_thread);
            });
        })
        .unwrap();
        let threads = THREADS.lock().unwrap();
        assert!(!threads.is_empty());
        assert!(
            threads.iter().all(|t| *t != loop_thread),
            "resolved on the loop thread"
        );
    }

    #[test]
    fn literals_need_no_lookup() {
        assert_eq!(
            at_once("::1").unwrap().unwrap()[0],
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(at_once("[::1]").unwrap().unwrap().len(), 1);
        assert_eq!(
            at_once("").unwrap().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(at_once("localhost").is_none());
    }
}
