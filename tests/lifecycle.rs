//! The scheduler lives and dies with the server, for each framework, on a real socket: it runs
//! before the first request, a job running when the shutdown signal arrives finishes before
//! the serve call returns, and no job starts after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let signal = async move {
        signal.await.ok();
    };
    let deadline = Duration::from_secs(10);
    match framework {
        Framework::Axum => {
            let app = axum::Router::new()
                .route(
                    "/state",
                    axum::routing::get(|axum::extract::State(s): axum::extract::State<SchedulerHandle>| async move {
                        format!("{:?}", s.state())
                    }),
                )
                .with_state(scheduler.clone());
            apsched::axum::serve_with_shutdown(listener, app, scheduler, signal, deadline)
                .await
                .expect("serve")
        }
        Framework::Warp => {
            let app = warp::path("state")
                .and(apsched::warp::with_scheduler(scheduler.clone()))
                .map(|s: SchedulerHandle| format!("{:?}", s.state()));
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
