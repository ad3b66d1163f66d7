//! Bearer-token authentication over HTTP: the scope matrix, the 401/403 answers, the
//! open probe endpoints, tokens kept out of the logs, and what `serve` refuses at start.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use alert_ledger::http::auth::Auth;
use common::{spawn_app_configured, Engine, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const INGEST: &str = "ingest-token-0000000000000000";
const READ: &str = "read-token-00000000000000000000";
const ADMIN: &str = "admin-token-000000000000000000";
const WRONG: &str = "wrong-token-000000000000000000";

const TOKENS: &str = r#"
[[tokens]]
name = "alertmanager"
token = "ingest-token-0000000000000000"
scopes = ["ingest"]

[[tokens]]
name = "dashboard"
token_env = "DASHBOARD_TOKEN"
scopes = ["read"]

[[tokens]]
name = "ops"
token = "admin-token-000000000000000000"
scopes = ["admin"]
"#;

/// Everything any test of this binary logs, at every level, to search for tokens.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let writer = move || Capture(sink.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(writer)
            .try_init();
        logs
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn app_with_tokens(engine: Engine) -> Option<TestApp> {
    captured_logs();
    spawn_app_configured(engine, |state| {
        let auth = Auth::parse(Path::new("tokens.toml"), TOKENS, |name| {
            (name == "DASHBOARD_TOKEN").then(|| READ.to_string())
        })
        .expect("token file");
        state.auth = Arc::new(auth);
    })
    .await
}

fn am_notification() -> Value {
    json!({"version": "4", "status": "firing", "receiver": "x", "alerts": [{
        "status": "firing", "labels": {"alertname": "Down", "instance": "h:1"},
        "annotations": {}, "startsAt": "2026-12-03T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "0123456789abcdef"}]})
}

async fn the_scope_follows_the_route(engine: Engine) {
    let Some(app) = app_with_tokens(engine).await else {
        return;
    };
    let event = json!({"event_id": "e1", "device_id": "d", "kind": "alarm",
                       "occurred_at": "2026-12-03T10:00:00Z"});
    let pd = json!({"routing_key": "r", "event_action": "acknowledge", "dedup_key": "k"});
    let am = am_notification();
    let ack = json!({"by": "ana"});
    // (method, path, body, the scope it needs, the answer once let in)
    let cases: Vec<(Method, &str, Option<&Value>, &str, u16)> = vec![
        (Method::GET, "/v1/alerts", None, READ, 200),
        (Method::HEAD, "/v1/alerts", None, READ, 200),
        (Method::GET, "/v1/events", None, READ, 200),
        (Method::GET, "/v1/devices/nobody/events", None, READ, 404),
        (Method::GET, "/v1/no-such-route", None, READ, 404),
        (Method::POST, "/v1/events", Some(&event), INGEST, 201),
        (
            Method::POST,
            "/v1/integrations/alertmanager",
            Some(&am),
            INGEST,
            200,
        ),
        (
            Method::POST,
            "/v1/integrations/pagerduty/enqueue",
            Some(&pd),
            INGEST,
            202,
        ),
        // Acknowledging is ingest; this alert does not exist.
        (
            Method::POST,
            "/v1/devices/d/alerts/k/ack",
            Some(&ack),
            INGEST,
            404,
        ),
        (Method::GET, "/v1/notifications", None, READ, 200),
        (Method::DELETE, "/v1/alerts", None, INGEST, 405),
        (Method::GET, "/v1/admin/rebuild", None, ADMIN, 200),
    ];
    for (method, path, body, needed, let_in) in cases {
        for (token, expected) in [
            (None, 401),
            (Some(WRONG), 401),
            (Some(INGEST), if needed == INGEST { let_in } else { 403 }),
            (Some(READ), if needed == READ { let_in } else { 403 }),
            (Some(ADMIN), if needed == ADMIN { let_in } else { 403 }),
        ] {
            let answer = app.request(method.clone(), path, body, token).await;
            assert_eq!(
                answer.status, expected,
                "{method} {path} with {token:?}: {}",
                answer.body
            );
        }
    }
    // Nothing recorded by refused requests: the one event and the one alert each
    // were recorded by the ingest token alone.
    let feed = app
        .request(Method::GET, "/v1/events", None, Some(READ))
        .await;
    assert_eq!(feed.body["events"].as_array().map(Vec::len), Some(2));

    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(open).await.status, 200, "{open}");
    }
}

async fn refusals_are_problem_documents_with_a_challenge(engine: Engine) {
    let Some(app) = app_with_tokens(engine).await else {
        return;
    };
    let answer = app.request(Method::GET, "/v1/alerts", None, None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Bearer realm=\"alert-ledger\"")
    );
    assert_eq!(
        answer.body,
        json!({"type": "https://alert-ledger.dev/problems/unauthorized", "title": "Unauthorized",
               "status": 401, "detail": "this endpoint needs a bearer token (Authorization: Bearer <token>)"})
    );

    let answer = app
        .request(Method::GET, "/v1/alerts", None, Some(WRONG))
        .await;
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Bearer realm=\"alert-ledger\", error=\"invalid_token\"")
    );
    assert_eq!(answer.body["detail"], "the bearer token is not valid");

    let basic = app
        .client
        .get(format!("{}/v1/alerts", app.address))
        .basic_auth("user", Some(READ))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), 401);

    let answer = app
        .request(Method::POST, "/v1/events", Some(&json!({})), Some(READ))
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Bearer realm=\"alert-ledger\", error=\"insufficient_scope\", scope=\"ingest\"")
    );
    assert_eq!(
        answer.body,
        json!({"type": "https://alert-ledger.dev/problems/forbidden", "title": "Forbidden",
               "status": 403,
               "detail": "the token \"dashboard\" lacks the scope ingest that POST /v1/events needs"})
    );

    // Tokens never reach the logs, whether accepted, refused or unknown.
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("logs")).to_string();
    assert!(logs.contains("request refused"), "nothing was captured");
    assert!(
        logs.contains("started processing request"),
        "the request trace was not captured"
    );
    for token in [INGEST, READ, ADMIN, WRONG] {
        assert!(!logs.contains(token), "a token is in the logs");
    }
}

on_both_engines!(
    the_scope_follows_the_route,
    refusals_are_problem_documents_with_a_challenge,
);

/// Run `alert-ledger serve` with `args` and `env`; its exit status and stderr when it
/// stops by itself within 20 s.
fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_alert-ledger"))
        .arg("serve")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("ALERT_LEDGER_AUTH_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run alert-ledger");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn without_tokens_it_refuses_a_non_loopback_address() {
    let (ok, stderr) = serve_exits(&["--listen", "0.0.0.0:0"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
}

#[test]
fn a_bad_token_file_is_refused_at_start_with_line_and_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tokens.toml");
    std::fs::write(
        &path,
        "[[tokens]]\nname = \"am\"\ntoken = \"short\"\nscopes = [\"ingest\"]\n",
    )
    .expect("write");
    let file = path.display().to_string();
    let (ok, stderr) = serve_exits(&["--auth-config", &file], &[]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "refusing to start: {file}:3: the token of \"am\" is shorter than 16 characters"
        )),
        "{stderr}"
    );
    let (ok, stderr) = serve_exits(&[], &[("ALERT_LEDGER_AUTH_CONFIG", "/nonexistent/t.toml")]);
    assert!(!ok);
    assert!(
        stderr.contains("/nonexistent/t.toml:1: cannot read the token file"),
        "{stderr}"
    );
}

#[test]
fn without_tokens_it_says_so_and_serves_on_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert-ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("NO_COLOR", "1")
        .env_remove("ALERT_LEDGER_AUTH_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start");
    let stderr = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        if line.contains("requests are NOT authenticated; listening on loopback only") {
            said = true;
        }
        if line.contains("alert-ledger serving") || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(said, "the start did not say it is unauthenticated");
}
