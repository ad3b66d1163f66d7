//! Test harness: a real server on a real database, one fresh database per test.
//!
//! SQLite tests always run, on a file in a temporary directory. PostgreSQL tests run
//! when `TEST_DATABASE_URL` points at a server (each test creates its own database);
//! without it they are skipped with a message, and under `CI=true` a skip fails.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alert_ledger::config::LedgerArgs;
use alert_ledger::http::AppState;
use alert_ledger::server;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// A database URL for a fresh, empty database, or `None` to skip (PostgreSQL only).
pub async fn fresh_database(engine: Engine) -> Option<(String, Option<tempfile::TempDir>)> {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
            Some((url, Some(dir)))
        }
        Engine::Postgres => {
            let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("TEST_DATABASE_URL is not set under CI=true: PostgreSQL tests cannot be skipped");
                }
                eprintln!(
                    "SKIPPED: PostgreSQL test (set TEST_DATABASE_URL=postgres://… to run it)"
                );
                return None;
            };
            let name = format!("alert_ledger_test_{}", uuid::Uuid::now_v7().simple());
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let base = admin_url
                .split('?')
                .next()
                .and_then(|u| u.rsplit_once('/'))
                .map(|(base, _)| base.to_string())
                .expect("TEST_DATABASE_URL has a database path");
            Some((format!("{base}/{name}"), None))
        }
    }
}

pub async fn spawn_app(engine: Engine) -> Option<TestApp> {
    let (url, dir) = fresh_database(engine).await?;
    let mut app = spawn_app_on(&url).await;
    app._dir = dir;
    Some(app)
}

pub async fn spawn_app_on(database_url: &str) -> TestApp {
    let mut args = LedgerArgs::with_database_url(database_url);
    args.max_connections = 16;
    args.max_append_attempts = 30;
    // Two cores shared by parallel tests: wait for a connection rather than shed load.
    args.acquire_timeout_seconds = 60;
    spawn_app_with(args).await
}

pub async fn spawn_app_with(args: LedgerArgs) -> TestApp {
    let state = server::open(&args).await.expect("open ledger");
    serve_state(state, &args.database_url).await
}

/// A fresh app whose state `configure` adjusts before it serves (tokens, settings).
pub async fn spawn_app_configured(
    engine: Engine,
    configure: impl FnOnce(&mut AppState),
) -> Option<TestApp> {
    let (url, dir) = fresh_database(engine).await?;
    let mut args = LedgerArgs::with_database_url(&url);
    args.max_connections = 16;
    args.acquire_timeout_seconds = 60;
    let mut state = server::open(&args).await.expect("open ledger");
    configure(&mut state);
    let mut app = serve_state(state, &url).await;
    app._dir = dir;
    Some(app)
}

async fn serve_state(state: AppState, database_url: &str) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run(listener, state.clone(), async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        state,
        database_url: database_url.to_string(),
        shutdown: Some(tx),
        server: Some(server),
        _dir: None,
    }
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
}

impl TestApp {
    /// Stop the server and close its pool, keeping the database (and its temp dir).
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.db.close().await;
        self._dir.take()
    }

    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> Answer {
        let mut request = self.client.post(format!("{}/v1/events", self.address));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request.body(body).send().await.expect("request")).await
    }

    /// A request to any path, with a bearer token when given.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.expect("request")).await
    }

    /// POST a JSON body to `path` without a token.
    pub async fn post_to(&self, path: &str, body: &Value) -> Answer {
        self.request(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    pub async fn post(&self, body: &Value) -> Answer {
        self.post_raw(body.to_string(), Some("application/json"))
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.client
                .get(format!("{}{}", self.address, path))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// Every event of a device's audit trail, following cursors.
    pub async fn trail(&self, device_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/devices/{device_id}/events?limit=1000&cursor={c}"),
                None => format!("/v1/devices/{device_id}/events?limit=1000"),
            };
            let answer = self.get(&path).await;
            if answer.status == 404 {
                return events;
            }
            assert_eq!(answer.status, 200, "{}", answer.body);
            events.extend(
                answer.body["events"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .cloned(),
            );
            match answer.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return events,
            }
        }
    }

    /// Every alert across devices with the given status, following cursors.
    pub async fn all_alerts(&self, status: &str) -> Vec<Value> {
        let mut alerts = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/alerts?status={status}&limit=1000&cursor={c}"),
                None => format!("/v1/alerts?status={status}&limit=1000"),
            };
            let answer = self.get(&path).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            alerts.extend(
                answer.body["alerts"]
                    .as_array()
                    .expect("alerts")
                    .iter()
                    .cloned(),
            );
            match answer.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return alerts,
            }
        }
    }

    /// The PostgreSQL pool of a PostgreSQL app.
    pub fn state_pool(&self) -> sqlx::PgPool {
        match &self.state.db {
            alert_ledger::store::Db::Postgres(pool) => pool.clone(),
            alert_ledger::store::Db::Sqlite(_) => panic!("not a PostgreSQL app"),
        }
    }

    pub async fn alert(&self, device_id: &str, alert_key: &str) -> Value {
        let answer = self
            .get(&format!("/v1/devices/{device_id}/alerts/{alert_key}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let www_authenticate = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
        retry_after,
        www_authenticate,
    }
}

/// Generate one `#[tokio::test]` per engine for each scenario `async fn(Engine)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$scenario($crate::common::Engine::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$scenario($crate::common::Engine::Postgres).await;
                }
            }
        )*
    };
}

/// Real `serve` processes, killed when dropped.
pub struct Servers(pub Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub async fn start_servers(database_url: &str, count: usize) -> (Servers, Vec<String>) {
    start_servers_with(database_url, count, &[]).await
}

pub async fn start_servers_with(
    database_url: &str,
    count: usize,
    env: &[(&str, &str)],
) -> (Servers, Vec<String>) {
    let mut servers = Servers(Vec::new());
    let mut targets = Vec::new();
    for _ in 0..count {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_alert-ledger"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start alert-ledger serve");
        servers.0.push(child);
        targets.push(format!("http://127.0.0.1:{port}"));
    }
    let client = reqwest::Client::new();
    for target in &targets {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{target}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "{target} did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (servers, targets)
}
