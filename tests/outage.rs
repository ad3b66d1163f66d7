//! When the database misbehaves: exhausted conflict retries and an unreachable
//! database both answer 503 with Retry-After, write nothing half-way, and the service
//! recovers by itself when the database returns.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_ledger::config::LedgerArgs;
use common::{fresh_database, spawn_app_with, Engine};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

async fn exhausted_retries_answer_503_and_record_nothing_for_it(engine: Engine) {
    let Some((url, dir)) = fresh_database(engine).await else {
        return;
    };
    let mut args = LedgerArgs::with_database_url(&url);
    args.max_append_attempts = 1;
    args.max_connections = 16;
    let app = spawn_app_with(args).await;
    let posts = (0..30).map(|i| {
        let body = json!({"event_id": format!("hot-{i}"), "device_id": "hot", "kind": "alarm"});
        let app = &app;
        async move { (i, app.post(&body).await) }
    });
    let answers = futures::future::join_all(posts).await;
    let mut recorded = Vec::new();
    let mut refused = 0;
    for (i, answer) in &answers {
        match answer.status {
            201 => recorded.push(format!("hot-{i}")),
            503 => {
                refused += 1;
                assert_eq!(answer.retry_after.as_deref(), Some("1"));
                assert_eq!(answer.content_type, "application/problem+json");
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert!(
        refused > 0,
        "30 concurrent appends with no retry must conflict"
    );
    let mut in_trail: Vec<String> = app
        .trail("hot")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    in_trail.sort();
    recorded.sort();
    assert_eq!(
        in_trail, recorded,
        "exactly the acknowledged events are recorded"
    );
    println!(
        "retries exhausted: {} recorded, {refused} answered 503",
        recorded.len()
    );
    drop(dir);
}

on_both_engines!(exhausted_retries_answer_503_and_record_nothing_for_it);

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct Proxy {
    port: u16,
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Arc::new(Proxy {
            port,
            accept: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
        });
        proxy.serve(listener, upstream).await;
        proxy
    }

    async fn serve(&self, listener: TcpListener, upstream: u16) {
        let connections = self.connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().await.push(handle);
            }
        });
        *self.accept.lock().await = Some(task);
    }

    async fn down(&self) {
        if let Some(task) = self.accept.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
        for connection in self.connections.lock().await.drain(..) {
            connection.abort();
        }
    }

    async fn up(&self, upstream: u16) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind proxy");
        self.serve(listener, upstream).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_the_service_recovers_alone() {
    let Some((url, _)) = fresh_database(Engine::Postgres).await else {
        return;
    };
    let upstream: u16 = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|host| host.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(5432);
    let proxy = Proxy::start(upstream).await;
    let (before, after) = url
        .rsplit_once('@')
        .expect("user@host in TEST_DATABASE_URL");
    let database = after.split_once('/').map(|(_, db)| db).expect("database");
    let proxied = format!("{before}@127.0.0.1:{}/{database}", proxy.port);
    let mut args = LedgerArgs::with_database_url(&proxied);
    args.acquire_timeout_seconds = 1;
    let app = spawn_app_with(args).await;

    let event = |id: &str| json!({"event_id": id, "device_id": "d", "kind": "alarm"});
    assert_eq!(app.post(&event("before")).await.status, 201);

    proxy.down().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.retry_after.as_deref(), Some("1"));
    let refused = app.post(&event("during")).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(refused.content_type, "application/problem+json");
    assert!(
        !refused.body.to_string().contains("127.0.0.1"),
        "no internal detail leaks"
    );

    proxy.up(upstream).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "did not recover without a restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.post(&event("after")).await.status, 201);
    let ids: Vec<String> = app
        .trail("d")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["before", "after"]);
}
