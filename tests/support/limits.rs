//! Resource limits (`getrlimit`/`setrlimit`): the tests that run out of
//! fds or file size lower a soft limit and put it back.

/// The type of `getrlimit`'s resource argument: glibc's own enum type,
/// a plain `c_int` on musl, macOS and the BSDs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub type Resource = libc::__rlimit_resource_t;
/// The type of `getrlimit`'s resource argument: glibc's own enum type,
/// a plain `c_int` on musl, macOS and the BSDs.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub type Resource = libc::c_int;

/// (soft, hard) limit of `res`.
#[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
pub fn getrlimit(res: Resource) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `r` only.
    assert_eq!(unsafe { libc::getrlimit(res, &mut r) }, 0);
    // rlim_t is u64 on Linux and macOS, i64 on FreeBSD (whose infinity
    // is i64::MAX): u64 here either way.
    (r.rlim_cur as u64, r.rlim_max as u64)
}

/// No limit, as the u64 that `getrlimit` and `set_soft` use.
#[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
pub const INFINITY: u64 = libc::RLIM_INFINITY as u64;

/// (soft, hard) RLIMIT_NOFILE.
pub fn nofile() -> (u64, u64) {
    getrlimit(libc::RLIMIT_NOFILE)
}

/// Sets the soft limit of `res` (the hard limit is left alone; a soft
/// limit above it is lowered to it).
#[allow(clippy::unnecessary_cast)] // rlim_t is i64 on FreeBSD
pub fn set_soft(res: Resource, soft: u64) {
    let (_, hard) = getrlimit(res);
    let r = libc::rlimit {
        rlim_cur: soft.min(hard) as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads `r` only.
    assert_eq!(unsafe { libc::setrlimit(res, &r) }, 0);
}
