//! H2, the fd census: how many fds this process has open, what they are,
//! and a baseline to come back to.

use std::time::{Duration, Instant};

/// The number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each open fd is (for failure messages).
pub fn fd_list() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{}->{}", e.file_name().to_string_lossy(), target.display())
        })
        .collect()
}

/// Remembers the fd count at creation.
pub struct FdCensus {
    /// The fd count when the census was taken.
    pub baseline: usize,
}

impl FdCensus {
    /// Takes the baseline now.
    pub fn new() -> Self {
        FdCensus {
            baseline: fd_count(),
        }
    }

    /// Waits up to 2 s for the fd count to come back to the baseline
    /// (pool threads and children may still be closing theirs), and
    /// returns the final count.
    pub fn settle(&self) -> usize {
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            let n = fd_count();
            if n <= self.baseline || Instant::now() > end {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts the fd count is back to the baseline.
    pub fn assert_back(&self, what: &str) {
        let n = self.settle();
        assert!(
            n <= self.baseline,
            "{what}: {n} fds open, baseline {}: {:?}",
            self.baseline,
            fd_list()
        );
    }
}
