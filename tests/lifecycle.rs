//! The scheduler lives and dies with the server, for each framework, on a real socket: it runs
//! before the first request, a job running when the shutdown signal arrives finishes before
//! the serve call returns, and no job starts after. With [`Lifecycle`] around each framework's
//! own server, clients stalled halfway through a request do not hold the shutdown past its
//! deadline, and an abort ends it at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apsched::api::{Lifecycle, Stopped};
use apsched::trigger::{DateTrigger, IntervalTrigger};
use apsched::{
    FirstRun, JobContext, NewSchedule, Scheduler, SchedulerHandle, SchedulerState, ShutdownReport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use warp::Filter;

#[derive(Clone, Copy, Debug)]
enum Framework {
    Axum,
    Warp,
}

/// One HTTP/1.1 request over a fresh connection; the status line and body.
async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

async fn serve(
    framework: Framework,
    listener: TcpListener,
    scheduler: SchedulerHandle,
    signal: oneshot::Receiver<()>,
) -> ShutdownReport {
    let stopped = serve_stopped(framework, listener, scheduler, signal).await;
    assert!(!stopped.forced);
    assert!(
        stopped.server.is_some(),
        "the server drained before the deadline"
    );
    stopped.report
}

async fn serve_stopped(
    framework: Framework,
    listener: TcpListener,
    scheduler: SchedulerHandle,
    signal: oneshot::Receiver<()>,
) -> Stopped<()> {
    let signal = async move {
        signal.await.ok();
    };
    let deadline = Duration::from_secs(10);
    match framework {
        Framework::Axum => {
            let app = axum_app(scheduler.clone());
            apsched::axum::serve_with_shutdown(listener, app, scheduler, signal, deadline)
                .await
                .expect("serve")
        }
        Framework::Warp => {
            let app = warp_app(scheduler.clone());
            apsched::warp::serve_with_shutdown(listener, app, scheduler, signal, deadline)
                .await
                .expect("serve")
        }
    }
}

async fn lives_and_dies_with_the_server(framework: Framework) {
    let started = Arc::new(Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let late_runs = Arc::new(Mutex::new(0));
    let (s, f, l) = (
        Arc::clone(&started),
        Arc::clone(&finished),
        Arc::clone(&late_runs),
    );
    let scheduler = Scheduler::builder()
        .job("slow", move |ctx: JobContext| {
            let (s, f) = (Arc::clone(&s), Arc::clone(&f));
            async move {
                s.notify_one();
                // A job that ignores its cancellation token: shutdown must wait for it.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                f.store(true, Ordering::SeqCst);
                let _ = ctx;
            }
        })
        .job("late", move |_ctx: JobContext| {
            let l = Arc::clone(&l);
            async move { *l.lock().unwrap() += 1 }
        })
        .build();
    let handle = scheduler.handle();
    handle
        .add(
            NewSchedule::for_job(
                "slow",
                IntervalTrigger::every(Duration::from_secs(3600)).unwrap(),
            )
            .id("slow")
            .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    assert_eq!(handle.state(), SchedulerState::NotStarted);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let server = serve(framework, listener, handle.clone(), stopped);
    let driver = async {
        // The scheduler was started before the server answered anything.
        let response = get(address, "/state").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("Running"), "{response}");
        tokio::time::timeout(Duration::from_secs(10), started.notified())
            .await
            .expect("the slow job started");
        // Due while the shutdown waits for the slow job (1.5 s).
        let late_at = handle.now() + chrono::TimeDelta::milliseconds(500);
        handle
            .add(NewSchedule::for_job("late", DateTrigger::at(late_at)).id("late"))
            .await
            .unwrap();
        stop.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(server, driver);

    assert!(
        finished.load(Ordering::SeqCst),
        "the running job finished before serve returned"
    );
    let ids: Vec<&str> = report.finished.iter().map(|r| &*r.schedule_id).collect();
    assert_eq!(ids, ["slow"]);
    assert!(report.aborted.is_empty());
    assert_eq!(handle.state(), SchedulerState::Stopped);
    // The "late" fire came due during the shutdown: it never starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*late_runs.lock().unwrap(), 0);
    // And the server no longer accepts.
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_lives_and_dies_with_the_server() {
    lives_and_dies_with_the_server(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_lives_and_dies_with_the_server() {
    lives_and_dies_with_the_server(Framework::Warp).await;
}

/// A client that sent half of its request and then stalls, keeping its connection open.
struct Stalled {
    _stream: tokio::net::TcpStream,
}

impl Stalled {
    /// Half of the request headers.
    async fn mid_headers(address: std::net::SocketAddr) -> Self {
        Self::send(address, "GET /state HTTP/1.1\r\nHost: test\r\nX-Half: ").await
    }

    /// The headers and half of the body it announced.
    async fn mid_body(address: std::net::SocketAddr) -> Self {
        Self::send(
            address,
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n\
             Content-Length: 100\r\n\r\nhalf of the",
        )
        .await
    }

    async fn send(address: std::net::SocketAddr, bytes: &str) -> Self {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(bytes.as_bytes()).await.expect("write");
        Self { _stream: stream }
    }
}

/// A scheduler whose job runs until aborted (it ignores its cancellation token), started at
/// once; `late` counts the runs of a second schedule due one second later.
async fn stubborn_scheduler() -> (SchedulerHandle, Arc<Notify>, Arc<Mutex<u32>>) {
    let started = Arc::new(Notify::new());
    let late_runs = Arc::new(Mutex::new(0));
    let (s, l) = (Arc::clone(&started), Arc::clone(&late_runs));
    let scheduler = Scheduler::builder()
        .job("stubborn", move |_ctx: JobContext| {
            let s = Arc::clone(&s);
            async move {
                s.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .job("late", move |_ctx: JobContext| {
            let l = Arc::clone(&l);
            async move { *l.lock().unwrap() += 1 }
        })
        .build();
    let handle = scheduler.handle();
    let hourly = IntervalTrigger::every(Duration::from_secs(3600)).unwrap();
    handle
        .add(
            NewSchedule::for_job("stubborn", hourly)
                .id("stubborn")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    (handle, started, late_runs)
}

fn axum_app(scheduler: SchedulerHandle) -> axum::Router {
    axum::Router::new()
        .route(
            "/state",
            axum::routing::get(
                |axum::extract::State(s): axum::extract::State<SchedulerHandle>| async move {
                    format!("{:?}", s.state())
                },
            ),
        )
        .route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        )
        .with_state(scheduler)
}

fn warp_app(
    scheduler: SchedulerHandle,
) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let state = warp::path("state")
        .and(apsched::warp::with_scheduler(scheduler))
        .map(|s: SchedulerHandle| format!("{:?}", s.state()));
    let echo = warp::path("echo")
        .and(warp::post())
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| String::from_utf8_lossy(&body).into_owned());
    state.or(echo)
}

/// Each framework's own server, its graceful shutdown given the lifecycle's signal.
async fn serve_with_guard(
    framework: Framework,
    listener: TcpListener,
    lifecycle: Lifecycle,
) -> Stopped<()> {
    let scheduler = lifecycle.scheduler().clone();
    match framework {
        Framework::Axum => {
            let server = axum::serve(listener, axum_app(scheduler))
                .with_graceful_shutdown(lifecycle.shutdown_signal());
            lifecycle
                .serve(server)
                .await
                .expect("the scheduler shut down")
                .transpose()
                .expect("the server did not fail")
        }
        Framework::Warp => {
            let server = warp::serve(warp_app(scheduler))
                .incoming(listener)
                .graceful(lifecycle.shutdown_signal())
                .run();
            lifecycle
                .serve(server)
                .await
                .expect("the scheduler shut down")
        }
    }
}

/// Stalled clients and a job that never ends: the guard ends both at the deadline, reports
/// the job aborted before it returned, and starts nothing once the shutdown began.
async fn stalled_clients_do_not_hold_the_shutdown(framework: Framework) {
    let (handle, started, late_runs) = stubborn_scheduler().await;
    let deadline = Duration::from_secs(1);
    let (stop, stopped) = oneshot::channel::<()>();
    let lifecycle = Lifecycle::start_with(handle.clone(), deadline, async move {
        stopped.await.ok();
    })
    .await
    .unwrap();
    assert_eq!(handle.state(), SchedulerState::Running);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_with_guard(framework, listener, lifecycle));
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the stubborn job started");
    let response = get(address, "/state").await;
    assert!(response.ends_with("Running"), "{response}");
    let _mid_headers = Stalled::mid_headers(address).await;
    let _mid_body = Stalled::mid_body(address).await;
    // Let the server read what the stalled clients sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late_at = handle.now() + chrono::TimeDelta::milliseconds(300);
    handle
        .add(NewSchedule::for_job("late", DateTrigger::at(late_at)).id("late"))
        .await
        .unwrap();
    stop.send(()).unwrap();

    // A bound on "it ends at all", far above the deadline: the machine is shared.
    let stopped = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the shutdown ended despite the stalled clients")
        .unwrap();
    assert!(stopped.server.is_none(), "the stalled server was cut off");
    assert!(!stopped.forced);
    assert!(stopped.report.finished.is_empty());
    let aborted: Vec<(&str, bool, bool)> = stopped
        .report
        .aborted
        .iter()
        .map(|a| (&*a.run.schedule_id, a.job_returned, a.to_be_run_again))
        .collect();
    assert_eq!(aborted, [("stubborn", false, false)]);
    assert_eq!(handle.state(), SchedulerState::Stopped);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *late_runs.lock().unwrap(),
        0,
        "no run started after the signal"
    );
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_axum_serve_with_the_guard_cuts_off_stalled_clients() {
    stalled_clients_do_not_hold_the_shutdown(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_graceful_server_with_the_guard_cuts_off_stalled_clients() {
    stalled_clients_do_not_hold_the_shutdown(Framework::Warp).await;
}

/// An abort during the shutdown (what a second signal does) ends the wait for the job and
/// the stalled client at once, long before the deadline.
async fn abort_ends_the_shutdown_at_once(framework: Framework) {
    let (handle, started, _late) = stubborn_scheduler().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_stopped(framework, listener, handle.clone(), stopped));
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the stubborn job started");
    let _mid_headers = Stalled::mid_headers(address).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "the shutdown waits for the job and the client"
    );
    handle.abort();
    // The deadline is 10 s; the abort ends the shutdown well before it.
    let stopped = tokio::time::timeout(Duration::from_secs(8), server)
        .await
        .expect("the abort ended the shutdown")
        .unwrap();
    assert!(stopped.forced);
    assert!(stopped.server.is_none());
    let aborted: Vec<(&str, bool)> = stopped
        .report
        .aborted
        .iter()
        .map(|a| (&*a.run.schedule_id, a.job_returned))
        .collect();
    assert_eq!(aborted, [("stubborn", false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_abort_ends_the_shutdown_at_once() {
    abort_ends_the_shutdown_at_once(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_abort_ends_the_shutdown_at_once() {
    abort_ends_the_shutdown_at_once(Framework::Warp).await;
}
