//! `GET /scheduler/events` on real servers, axum and warp: the scheduler's events as
//! Server-Sent Events, in order, with the API's auth; the stream ends when the scheduler
//! shuts down.

use std::time::Duration;

use apsched::api::Api;
use apsched::{JobContext, Scheduler, SchedulerHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "s3cret";

async fn scheduler() -> SchedulerHandle {
    Scheduler::builder()
        .job("record", |_ctx: JobContext| async {})
        .build()
        .start()
        .await
        .unwrap()
}

/// Serves the API on a free port with `framework`; its address.
async fn serve(framework: &str, api: Api) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    match framework {
        "axum" => {
            let app: axum::Router = apsched::axum::api_routes(api);
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        _ => {
            let filter = apsched::warp::api_routes(api);
            tokio::spawn(warp::serve(filter).incoming(listener).run());
        }
    }
    address
}

/// A response being read: its status, then its body's chunks as they come.
struct Stream {
    reader: BufReader<TcpStream>,
    status: u16,
    buffer: String,
}

impl Stream {
    async fn open(address: std::net::SocketAddr, path: &str, token: Option<&str>) -> Self {
        let mut socket = TcpStream::connect(address).await.unwrap();
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        socket
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}\r\n").as_bytes())
            .await
            .unwrap();
        let mut reader = BufReader::new(socket);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await.unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await.unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        Self {
            reader,
            status,
            buffer: String::new(),
        }
    }

    /// The next chunk of a chunked body; `None` at its end.
    async fn chunk(&mut self) -> Option<String> {
        let mut size = String::new();
        self.reader.read_line(&mut size).await.ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return None;
        }
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).await.ok()?;
        data.truncate(size);
        Some(String::from_utf8(data).unwrap())
    }

    /// The next event of the stream; `None` when it ended.
    async fn event(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = frame.trim().strip_prefix("data: ") {
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.chunk())
                .await
                .expect("an event within 10 s")?;
            self.buffer.push_str(&chunk);
        }
    }
}

async fn events_in_order(framework: &str) {
    let handle = scheduler().await;
    let api = Api::with_bearer_token(handle.clone(), TOKEN);
    let address = serve(framework, api.clone()).await;
    let refused = Stream::open(address, "/scheduler/events", None).await;
    assert_eq!(refused.status, 401, "{framework}: the API's auth");
    let mut events = Stream::open(address, "/scheduler/events", Some(TOKEN)).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.event().await.unwrap()["type"], "connected");
    // Added through the API, due at once.
    let mut socket = TcpStream::connect(address).await.unwrap();
    let job = json!({"id": "e", "func": "record", "trigger": "interval", "hours": 1,
                     "next_run_time": "now"})
    .to_string();
    socket
        .write_all(
            format!(
                "POST /scheduler/jobs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{job}",
                job.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = events.event().await.expect("the stream goes on");
        assert_eq!(event["schedule_id"], "e", "{event}");
        seen.push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["added", "submitted", "succeeded"], "{framework}");
    // The stream ends when the scheduler shuts down, so the server can drain.
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
    let mut last = None;
    while let Some(event) = events.event().await {
        last = Some(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(last.as_deref(), Some("end"), "{framework}");
}

#[tokio::test]
async fn events_in_order_on_axum() {
    events_in_order("axum").await;
}

#[tokio::test]
async fn events_in_order_on_warp() {
    events_in_order("warp").await;
}
