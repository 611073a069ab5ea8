//! Resource limits (`getrlimit`/`setrlimit`): the tests that run out of
//! fds or file size lower a soft limit and put it back.

/// (soft, hard) limit of `res`.
pub fn getrlimit(res: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `r` only.
    assert_eq!(unsafe { libc::getrlimit(res, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

/// (soft, hard) RLIMIT_NOFILE.
pub fn nofile() -> (u64, u64) {
    getrlimit(libc::RLIMIT_NOFILE)
}

/// Sets the soft limit of `res` (the hard limit is left alone; a soft
/// limit above it is lowered to it).
pub fn set_soft(res: libc::__rlimit_resource_t, soft: u64) {
    let (_, hard) = getrlimit(res);
    let r = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads `r` only.
    assert_eq!(unsafe { libc::setrlimit(res, &r) }, 0);
}
