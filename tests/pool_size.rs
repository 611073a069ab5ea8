//! `EVLOOP_THREADPOOL_SIZE` sets the pool's size (its own test binary, as
//! it changes the process environment).

#[test]
fn the_environment_sets_the_pool_size() {
    std::env::set_var("EVLOOP_THREADPOOL_SIZE", "2");
    let el = evloop::EventLoop::new().unwrap();
    el.run_main(|| evloop::queue_work(|| (), |r| r.unwrap()))
        .unwrap();
    assert_eq!(el.threadpool_threads(), 2);
    el.run().unwrap();
    std::env::set_var("EVLOOP_THREADPOOL_SIZE", "nonsense");
    let el = evloop::EventLoop::new().unwrap();
    el.run_main(|| evloop::queue_work(|| (), |r| r.unwrap()))
        .unwrap();
    assert_eq!(el.threadpool_threads(), evloop::DEFAULT_THREADPOOL_SIZE);
    el.run().unwrap();
}
