//! The database going away and coming back: the scheduler reports it, backs off, carries on
//! when the database returns, and runs no fire twice. The database sits behind a TCP proxy
//! the test can cut (connections dropped, new ones refused) and restore.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scheduler_core::store::{FireHistory, FireState};
use scheduler_core::trigger::IntervalTrigger;
use scheduler_core::{Event, FirstRun, JobContext, NewSchedule, Scheduler};
use sea_orm::{ConnectOptions, Database};
use store_sea_orm::{Store, StoreOptions};
use support::{Backend, fresh_url, server_url};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP proxy to the database that can be taken down and brought back on the same port.
struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    tasks: Option<JoinSet<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut proxy = Self {
            address,
            target,
            tasks: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Drops every connection and stops listening: new connections are refused.
    async fn cut(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }
}

fn host_port(url: &str) -> (String, SocketAddr) {
    // scheme://user@host:port/rest
    let after_scheme = url.split_once("://").unwrap().1;
    let authority = after_scheme.split(['/', '?']).next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    (
        host_port.to_owned(),
        host_port
            .parse()
            .expect("a numeric host:port in the test URL"),
    )
}

on_backends!(
    [postgres => Postgres, mysql => MySql]:the_scheduler_rides_out_a_database_outage);

async fn the_scheduler_rides_out_a_database_outage(backend: Backend, test: &str) {
    let Some(server) = server_url(backend, test) else {
        return;
    };
    let url = fresh_url(backend, &server).await;
    let (direct, target) = host_port(&url);
    let mut proxy = Proxy::start(target).await;
    let proxied = url.replacen(&direct, &proxy.address.to_string(), 1);
    let mut connect = ConnectOptions::new(proxied);
    connect
        .sqlx_logging(false)
        .max_connections(5)
        .connect_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(1));
    let options = StoreOptions::default()
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(100));
    let store = Store::from_connection(Database::connect(connect).await.unwrap(), options)
        .await
        .unwrap();

    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    let scheduler = Scheduler::builder()
        .shared_store(store.clone())
        .instance_name("only")
        .job("tick", move |ctx: JobContext| {
            seen.lock().unwrap().push(ctx.nominal_fire_time());
            std::future::ready(())
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut events = scheduler.subscribe();
    let every_second = IntervalTrigger::every(Duration::from_secs(1)).unwrap();
    scheduler
        .add(
            NewSchedule::for_job("tick", every_second)
                .id("tick")
                .first_run(FirstRun::Now),
        )
        .await
        .unwrap();
    let count = || runs.lock().unwrap().len();
    wait_for("two runs", || count() >= 2).await;

    // Down for longer than a lease.
    proxy.cut().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = count();
    proxy.restore().await;
    wait_for("runs after the outage", || count() >= during + 3).await;
    scheduler.shutdown(Duration::from_secs(5)).await.unwrap();

    let mut failed = 0;
    let mut recovered = false;
    while let Ok(event) = events.try_recv() {
        match event {
            Event::StoreFailed { .. } => failed += 1,
            Event::StoreRecovered => recovered = true,
            _ => {}
        }
    }
    assert!(failed > 0, "the outage was reported");
    assert!(recovered, "and so was the recovery");
    let runs = runs.lock().unwrap().clone();
    let distinct: HashSet<_> = runs.iter().collect();
    assert_eq!(distinct.len(), runs.len(), "no fire ran twice: {runs:?}");
    let fires = store.fires("tick", 100).await.unwrap();
    // Fires due during the outage are coalesced into the first one after it.
    assert!(
        fires.iter().all(|f| f.state == FireState::Succeeded
            || (f.state == FireState::Skipped
                && f.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("coalesced")))),
        "every fire recorded, none left running or taken over: {fires:?}"
    );
    let succeeded = fires
        .iter()
        .filter(|f| f.state == FireState::Succeeded)
        .count();
    assert_eq!(succeeded, runs.len(), "{fires:?}");
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
