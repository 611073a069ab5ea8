//! Child processes: exit codes and signals, kill, spawn failures, piped
//! stdio with backpressure, exec, many exits at once, reaping and fds.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::process::{exec, exit_signal, promises, Command, Signal, Stdio};
use support::init_log;

/// Whether `pid` is gone (reaped): no /proc entry, or one that is not ours
/// any more. A zombie still has its entry, in state `Z`.
fn reaped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // "pid (comm) S ppid ...": a reused pid has another parent.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let mut fields = after.split(' ');
            let _state = fields.next().unwrap();
            let ppid: u32 = fields.next().unwrap().parse().unwrap();
            ppid != std::process::id()
        }
    }
}

fn wait_reaped(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if reaped(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn exit_code_is_reported() {
    init_log();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    evloop::run(move || {
        let child = Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .expect("spawn");
        assert!(child.pid() > 0);
        child.on_exit(move |r| g.set(Some(r.unwrap().code())));
    })
    .unwrap();
    assert_eq!(got.get(), Some(Some(3)));
}

#[test]
fn kill_reports_the_signal_and_refuses_after_reaping() {
    init_log();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    evloop::run(move || {
        let child = Command::new("sleep").arg("30").spawn().expect("spawn");
        let c = child.clone();
        child.on_exit(move |r| {
            let status = r.unwrap();
            assert_eq!(status.code(), None);
            g.set(exit_signal(&status));
            // Reaped: the pid is no longer ours to signal.
            let e = c.kill(Signal::SIGTERM).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        });
        child.kill(Signal::SIGTERM).unwrap();
    })
    .unwrap();
    assert_eq!(got.get(), Some(Signal::SIGTERM));
}

/// A program that cannot start is an error at the call (as `std`'s and
/// tokio's `spawn`), in every style: `spawn()` returns it, `exec` calls
/// back with it, `promises::exec` rejects with it, and a task gets it from
/// `.await`. No `Child` without pipes is ever handed out.
#[test]
fn a_missing_program_is_not_found_in_every_style() {
    init_log();
    const MISSING: &str = "/nonexistent/evloop-no-such-program";
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    evloop::run(move || {
        let e = Command::new(MISSING)
            .stdout(Stdio::Piped)
            .spawn()
            .expect_err("a missing program");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("evloop-no-such-program"), "{e}");
        s.borrow_mut().push(("spawn", e.kind()));
        let s2 = s.clone();
        evloop::process::exec(&mut Command::new(MISSING), move |r| {
            s2.borrow_mut()
                .push(("exec callback", r.unwrap_err().kind()))
        });
        let s2 = s.clone();
        evloop::process::promises::exec(&mut Command::new(MISSING))
            .then(|_| ())
            .catch(move |e| s2.borrow_mut().push(("exec promise", e.kind())));
        let s2 = s.clone();
        let _ = evloop::spawn(async move {
            let e = evloop::process::promises::exec(&mut Command::new(MISSING))
                .await
                .expect_err("a missing program");
            s2.borrow_mut().push(("exec await", e.kind()));
        });
    })
    .unwrap();
    let mut seen = seen.borrow().clone();
    seen.sort();
    let nf = io::ErrorKind::NotFound;
    assert_eq!(
        seen,
        vec![
            ("exec await", nf),
            ("exec callback", nf),
            ("exec promise", nf),
            ("spawn", nf)
        ]
    );
}

#[test]
fn on_exit_after_the_end_still_runs() {
    init_log();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        let child = Command::new("true").spawn().expect("spawn");
        let c = child.clone();
        child.on_exit(move |r| {
            assert!(r.unwrap().success());
            assert!(c.exit_status().is_some());
            let n3 = n2.clone();
            c.on_exit(move |r| {
                assert!(r.unwrap().success());
                n3.set(n3.get() + 1);
            });
            n2.set(n2.get() + 1);
        });
    })
    .unwrap();
    assert_eq!(n.get(), 2);
}

/// 1 MiB through `cat`: writes respect `write() == false` / `on_drain`, and
/// every byte comes back in order.
#[test]
fn one_mebibyte_through_cat_with_backpressure() {
    init_log();
    const TOTAL: usize = 1 << 20;
    let data: Rc<Vec<u8>> = Rc::new((0..TOTAL).map(|i| (i * 31 % 251) as u8).collect());
    let back = Rc::new(RefCell::new(Vec::with_capacity(TOTAL)));
    let drains = Rc::new(Cell::new(0));
    let status = Rc::new(Cell::new(None));
    let (d, b, dr, st) = (data.clone(), back.clone(), drains.clone(), status.clone());
    evloop::run(move || {
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.clone().unwrap();
        let stdout = child.stdout.clone().unwrap();
        stdout.on_data(move |bytes| b.borrow_mut().extend_from_slice(bytes));
        child.on_exit(move |r| st.set(Some(r.unwrap())));
        // Write 16 KiB chunks until the stream says stop, then resume on
        // drain: the socket-style backpressure contract.
        let offset = Rc::new(Cell::new(0));
        let pump: Rc<dyn Fn()> = {
            let (stdin, offset) = (stdin.clone(), offset.clone());
            Rc::new(move || loop {
                let at = offset.get();
                if at >= d.len() {
                    stdin.end();
                    return;
                }
                let end = (at + 16 * 1024).min(d.len());
                offset.set(end);
                if !stdin.write(&d[at..end]) {
                    return;
                }
            })
        };
        let p = pump.clone();
        stdin.on_drain(move || {
            dr.set(dr.get() + 1);
            p();
        });
        pump();
    })
    .unwrap();
    assert!(status.get().unwrap().success());
    assert_eq!(back.borrow().len(), TOTAL);
    assert!(*back.borrow() == *data, "bytes differ");
    assert!(
        drains.get() > 0,
        "1 MiB into a 64 KiB pipe must hit backpressure"
    );
}

#[test]
fn many_children_exiting_at_once_are_all_reported() {
    init_log();
    const N: usize = 64;
    let codes = Rc::new(RefCell::new(Vec::new()));
    let c = codes.clone();
    evloop::run(move || {
        for i in 0..N {
            let c = c.clone();
            Command::new("sh")
                .args(["-c", &format!("exit {}", i % 7)])
                .spawn()
                .expect("spawn")
                .on_exit(move |r| c.borrow_mut().push((i, r.unwrap().code().unwrap())));
        }
    })
    .unwrap();
    let mut got = codes.borrow().clone();
    got.sort();
    assert_eq!(got.len(), N);
    for (i, code) in got {
        assert_eq!(code, (i % 7) as i32);
    }
}

#[test]
fn exec_collects_output_in_callback_promise_and_async() {
    init_log();
    let lp = evloop::EventLoop::new().unwrap();
    let out = Rc::new(RefCell::new(None));
    let (promise, task) = {
        let _g = lp.enter();
        let o = out.clone();
        exec(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 2"]),
            move |r| *o.borrow_mut() = Some(r.unwrap()),
        );
        let promise = promises::exec(Command::new("echo").arg("promised"));
        let task = evloop::spawn(async {
            let out = promises::exec(Command::new("echo").arg("awaited")).await?;
            Ok::<_, evloop::promise::Rejection>(out.stdout)
        });
        (promise, task)
    };
    lp.run().unwrap();
    let o = out.borrow_mut().take().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(o.stdout, b"out\n");
    assert_eq!(o.stderr, b"err\n");
    assert_eq!(promise.peek().unwrap().unwrap().stdout, b"promised\n");
    assert_eq!(task.peek().unwrap().unwrap().unwrap(), b"awaited\n");
}

#[test]
fn exec_past_max_output_fails_and_kills_the_child() {
    init_log();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let start = Instant::now();
    evloop::run(move || {
        // `yes` writes forever: only the limit stops it.
        exec(Command::new("yes").max_output(100_000), move |r| {
            *g.borrow_mut() = Some(r.unwrap_err().to_string())
        });
    })
    .unwrap();
    let msg = got.borrow_mut().take().unwrap();
    assert!(msg.contains("stdout exceeded max_output"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_dropped_child_is_still_reaped() {
    init_log();
    let pid = Rc::new(Cell::new(0));
    let p = pid.clone();
    evloop::run(move || {
        let child = Command::new("sh")
            .args(["-c", "exit 0"])
            .spawn()
            .expect("spawn");
        p.set(child.pid());
        // No handle kept, no callback: the loop still waits for it and
        // reaps it.
    })
    .unwrap();
    assert!(reaped(pid.get()), "pid {} left a zombie", pid.get());
}

#[test]
fn children_running_when_the_loop_is_dropped_are_reaped() {
    init_log();
    let lp = evloop::EventLoop::new().unwrap();
    let pid = {
        let _g = lp.enter();
        let child = Command::new("sleep").arg("0.2").spawn().expect("spawn");
        child.unref();
        child.pid()
    };
    lp.run().unwrap(); // returns at once: the child is unref'd
    drop(lp);
    assert!(wait_reaped(pid), "pid {pid} left a zombie");
}

#[test]
fn unref_child_does_not_keep_the_loop_alive() {
    init_log();
    let start = Instant::now();
    let pid = Rc::new(Cell::new(0));
    let p = pid.clone();
    let lp = evloop::EventLoop::new().unwrap();
    {
        let _g = lp.enter();
        let child = Command::new("sleep").arg("5").spawn().expect("spawn");
        p.set(child.pid());
        child.unref();
    }
    lp.run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(4));
    evloop::process::kill(pid.get(), Signal::SIGKILL).unwrap();
    drop(lp);
    assert!(wait_reaped(pid.get()));
}

/// Every fd this process opens is close-on-exec, so a child inherits none
/// of them: the fds `ls` sees in itself are 0, 1, 2, its own directory fd,
/// and whatever non-close-on-exec fds *our* parent (cargo, a shell) left
/// open, which are not ours to close.
#[test]
fn no_fd_leaks_into_children() {
    use std::os::fd::AsRawFd;
    init_log();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    evloop::run(move || {
        // Fds of every kind the crate opens, held across the spawn: a
        // listener, a socket pair, a file, and the loop's signal pipes.
        let listener = evloop::net::TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let pair = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let l = listener.clone();
        exec(Command::new("ls").arg("/proc/self/fd"), move |r| {
            let ours = [pair.0.as_raw_fd(), pair.1.as_raw_fd(), file.as_raw_fd()];
            let listing = String::from_utf8(r.unwrap().stdout).unwrap();
            *g.borrow_mut() = Some((listing, ours, cloexec_fds()));
            l.close();
        });
    })
    .unwrap();
    let (listing, ours, cloexec) = got.borrow_mut().take().unwrap();
    let child: BTreeSet<i32> = listing
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    for fd in ours {
        assert!(cloexec.contains(&fd), "fd {fd} is not close-on-exec");
    }
    let leaked: Vec<i32> = child
        .iter()
        .copied()
        .filter(|fd| *fd > 3 && cloexec.contains(fd))
        .collect();
    assert!(
        leaked.is_empty(),
        "the child inherited {leaked:?} (it saw {child:?})"
    );
}

/// This process's open fds that have close-on-exec set.
fn cloexec_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| {
            // SAFETY: F_GETFD reads flags of an fd number; a closed one gives -1.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags != -1 && flags & libc::FD_CLOEXEC != 0
        })
        .collect()
}

#[test]
fn child_stdout_end_and_exit_both_arrive() {
    init_log();
    let log = support::Log::new();
    let l = log.clone();
    evloop::run(move || {
        let child = Command::new("printf")
            .arg("x")
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let out = child.stdout.clone().unwrap();
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        out.on_data(move |b| l1.push(format!("data {}", String::from_utf8_lossy(b))));
        out.on_end(move || l2.push("end"));
        child.on_exit(move |r| l3.push(format!("exit {}", r.unwrap().code().unwrap())));
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(got, vec!["data x", "end", "exit 0"]);
}
