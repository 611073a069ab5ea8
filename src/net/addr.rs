//! One address argument for every bind and connect: [`ToAddrs`].
//!
//! std's `ToSocketAddrs` resolves host names by calling `getaddrinfo`,
//! which blocks; on the loop thread that would stall every other source.
//! [`ToAddrs`] splits the two cases: literal forms (`"127.0.0.1:80"`,
//! `"[::1]:0"`, a `SocketAddr`, `(IpAddr, u16)`, lists) are parsed at once,
//! with no thread involved; a host name (`"localhost:80"`,
//! `("example.com", 443)`) is resolved on the thread pool, as Node's
//! `dns.lookup` does, and the operation continues on the loop thread when
//! the answer comes back.
//!
//! Errors, the same in every style:
//! - a string that is neither `ip:port` nor `host:port`: `InvalidInput`;
//! - an empty list of addresses: `InvalidInput`;
//! - a name that does not resolve: `NotFound`, with a message naming the
//!   host (Node's `getaddrinfo ENOTFOUND host`), or one that resolves to
//!   no address: `NotFound` too.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

use crate::Work;

/// An address to bind or connect to, resolved without blocking the loop
/// (the crate's `ToSocketAddrs`).
///
/// Implemented for [`SocketAddr`], [`SocketAddrV4`], [`SocketAddrV6`],
/// `(IpAddr, u16)`, `(&str, u16)`, `(String, u16)`, `&str`, `String`,
/// `&String`, `&[SocketAddr]`, `[SocketAddr; N]` and `Vec<SocketAddr>`. A
/// string is `"ip:port"` (`"[::1]:80"` for IPv6) or `"host:port"`; a tuple's
/// `&str` is an IP or a host name. Literal forms need no lookup; a host
/// name is resolved on the thread pool (never on the loop thread).
/// Connecting tries each address in turn; binding takes the first that
/// binds. The trait is sealed: its one method is an implementation detail.
///
/// ```
/// use evloop::net::promises as net;
/// use evloop::net::TcpListener;
///
/// evloop::run(|| {
///     let server = TcpListener::bind("127.0.0.1:0", |conn| conn.unwrap().end()).unwrap();
///     let port = server.local_addr().port();
///     // The same server, three ways: a name, a (host, port) pair, a SocketAddr.
///     let p1 = net::connect(format!("localhost:{port}"));
///     let p2 = net::connect(("localhost", port));
///     let p3 = net::connect(server.local_addr());
///     evloop::promise::Promise::all(vec![p1, p2, p3]).then(move |streams| {
///         assert_eq!(streams.len(), 3);
///         streams.iter().for_each(|s| s.destroy());
///         server.close();
///     });
/// })
/// .unwrap();
/// ```
pub trait ToAddrs: sealed::Sealed {}

pub(crate) use sealed::Target;

mod sealed {
    use std::net::SocketAddr;

    /// What an address argument amounts to before any lookup.
    #[derive(Debug, Clone)]
    pub enum Target {
        /// Literal addresses: nothing to resolve.
        Addrs(Vec<SocketAddr>),
        /// A host name and port, to resolve on the pool.
        Host(String, u16),
        /// Not an address at all (the message says why).
        Invalid(String),
    }

    pub trait Sealed {
        fn target(&self) -> Target;
    }
}

use sealed::Sealed;

impl Target {
    /// The target of `addr`.
    pub(crate) fn of(addr: &impl ToAddrs) -> Target {
        addr.target()
    }

    /// The addresses, if they are known without a lookup: `Some(Err)` for
    /// bad input or an empty list, `None` for a host name.
    pub(crate) fn now(&self) -> Option<io::Result<Vec<SocketAddr>>> {
        match self {
            Target::Addrs(a) if a.is_empty() => Some(Err(io::Error::new(
                ErrorKind::InvalidInput,
                "no socket address given (an empty list)",
            ))),
            Target::Addrs(a) => Some(Ok(a.clone())),
            Target::Invalid(msg) => Some(Err(io::Error::new(ErrorKind::InvalidInput, msg.clone()))),
            Target::Host(..) => None,
        }
    }

    /// Resolves on the pool if needed; `done` runs on the loop thread,
    /// always later (never inside this call), with the addresses or the
    /// error. Returns the pool job, which an abort may cancel.
    pub(crate) fn resolve(
        self,
        done: impl FnOnce(io::Result<Vec<SocketAddr>>) + 'static,
    ) -> Option<Work> {
        match self {
            Target::Host(host, port) => Some(crate::queue_work_cancelable(
                move || lookup_host(&host, port),
                move |r| done(r.and_then(|r| r)),
            )),
            literal => {
                let r = literal.now().expect("a literal target");
                crate::next_tick(move || done(r));
                None
            }
        }
    }
}

/// `getaddrinfo` for `(host, port)`, blocking: call it on the pool only.
/// Errors name the host, as Node's `ENOTFOUND` does; a name with no
/// address is `NotFound` too.
/// The first address of `addr` when it needs no lookup: for the
/// synchronous calls (a datagram's destination, a UDP socket's default
/// peer, a cluster's bind). A host name is `InvalidInput`, naming `call`
/// and the way out (resolve it first with [`dns::lookup`](crate::dns::lookup)).
pub(crate) fn literal_first(addr: &impl ToAddrs, call: &str) -> io::Result<SocketAddr> {
    Ok(literal(addr, call)?[0])
}

/// Every address of `addr` when it needs no lookup (never empty); a host
/// name is `InvalidInput`, as in [`literal_first`].
pub(crate) fn literal(addr: &impl ToAddrs, call: &str) -> io::Result<Vec<SocketAddr>> {
    Target::of(addr).now().unwrap_or_else(|| {
        Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{call} takes a literal address (resolve a host name with dns::lookup first)"),
        ))
    })
}

pub(crate) fn lookup_host(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            return Err(io::Error::new(
                ErrorKind::NotFound,
                format!("getaddrinfo ENOTFOUND {host}: {e}"),
            ))
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            ErrorKind::NotFound,
            format!("getaddrinfo ENOTFOUND {host}: no address"),
        ));
    }
    let mut unique = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    Ok(unique)
}

/// `"ip:port"`, `"[v6]:port"` or `"host:port"`.
fn parse_str(s: &str) -> Target {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Target::Addrs(vec![a]);
    }
    let invalid = || Target::Invalid(format!("not a socket address: {s:?} (want \"host:port\")"));
    let Some((host, port)) = s.rsplit_once(':') else {
        return invalid();
    };
    match port.parse::<u16>() {
        // A bare IPv6 address with a port (`::1:80`) is ambiguous: it needs brackets.
        Ok(port) if !host.is_empty() && !host.contains(':') => host_port(host, port),
        _ => invalid(),
    }
}

fn host_port(host: &str, port: u16) -> Target {
    match host.parse::<IpAddr>() {
        Ok(ip) => Target::Addrs(vec![SocketAddr::new(ip, port)]),
        Err(_) if host.is_empty() => Target::Invalid("an empty host name".into()),
        Err(_) => Target::Host(host.to_string(), port),
    }
}

macro_rules! literal {
    ($($t:ty),*) => {$(
        impl Sealed for $t {
            fn target(&self) -> Target {
                Target::Addrs(vec![SocketAddr::from(*self)])
            }
        }
        impl ToAddrs for $t {}
    )*};
}
literal!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16));

impl Sealed for (std::net::Ipv4Addr, u16) {
    fn target(&self) -> Target {
        Target::Addrs(vec![SocketAddr::from(*self)])
    }
}
impl ToAddrs for (std::net::Ipv4Addr, u16) {}

impl Sealed for (std::net::Ipv6Addr, u16) {
    fn target(&self) -> Target {
        Target::Addrs(vec![SocketAddr::from(*self)])
    }
}
impl ToAddrs for (std::net::Ipv6Addr, u16) {}

impl Sealed for str {
    fn target(&self) -> Target {
        parse_str(self)
    }
}
impl ToAddrs for str {}

impl Sealed for String {
    fn target(&self) -> Target {
        parse_str(self)
    }
}
impl ToAddrs for String {}

impl Sealed for (&str, u16) {
    fn target(&self) -> Target {
        host_port(self.0, self.1)
    }
}
impl ToAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn target(&self) -> Target {
        host_port(&self.0, self.1)
    }
}
impl ToAddrs for (String, u16) {}

impl Sealed for [SocketAddr] {
    fn target(&self) -> Target {
        Target::Addrs(self.to_vec())
    }
}
impl ToAddrs for [SocketAddr] {}

impl<const N: usize> Sealed for [SocketAddr; N] {
    fn target(&self) -> Target {
        Target::Addrs(self.to_vec())
    }
}
impl<const N: usize> ToAddrs for [SocketAddr; N] {}

impl Sealed for Vec<SocketAddr> {
    fn target(&self) -> Target {
        Target::Addrs(self.clone())
    }
}
impl ToAddrs for Vec<SocketAddr> {}

impl<T: Sealed + ?Sized> Sealed for &T {
    fn target(&self) -> Target {
        (**self).target()
    }
}
impl<T: ToAddrs + ?Sized> ToAddrs for &T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert!(matches!(parse_str("127.0.0.1:80"), Target::Addrs(a) if a.len() == 1));
        assert!(matches!(parse_str("[::1]:80"), Target::Addrs(a) if a.len() == 1));
        assert!(matches!(parse_str("localhost:80"), Target::Host(h, 80) if h == "localhost"));
        assert!(matches!(parse_str("::1:80"), Target::Invalid(_)));
        assert!(matches!(parse_str("localhost"), Target::Invalid(_)));
        assert!(matches!(parse_str(":80"), Target::Invalid(_)));
        assert!(matches!(parse_str("a:99999"), Target::Invalid(_)));
        assert!(matches!(("::1", 5).target(), Target::Addrs(_)));
        let empty: Vec<SocketAddr> = vec![];
        assert_eq!(
            empty.target().now().unwrap().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
