//! Notifications against a real local HTTP receiver: the 242 ms race, reminders,
//! acknowledgements, retries, dead letters, rebuilds, history, several servers, and a
//! server killed mid-delivery.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use common::{fresh_database, spawn_app_with, start_servers_with, Engine, TestApp};
use serde_json::{json, Value};
use tokio::net::TcpListener;

// ---- a real receiver ---------------------------------------------------------------

#[derive(Clone, Debug)]
struct Got {
    key: String,
    authorization: String,
    body: Value,
}

#[derive(Clone, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    /// Hold the request this long, then answer 200.
    Slow(Duration),
}

#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

struct Receiver {
    url: String,
    inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(port: u16, script: Vec<Reply>) -> Receiver {
        let inbox = Inbox::default();
        inbox.script.lock().unwrap().extend(script);
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inbox.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            inbox,
            task,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.inbox.got.lock().unwrap().clone()
    }

    fn messages(&self, device_id: &str) -> Vec<String> {
        self.got()
            .iter()
            .filter(|g| g.body["device_id"] == device_id)
            .map(|g| label(&g.body))
            .collect()
    }
}

/// `firing#1`, `reminder#1.2`, `resolved#1`: message kind, episode, reminder number.
fn label(body: &Value) -> String {
    let kind = body["message"].as_str().unwrap_or("?");
    let episode = &body["episode"];
    if kind == "reminder" {
        format!("reminder#{episode}.{}", body["reminder"])
    } else {
        format!("{kind}#{episode}")
    }
}

async fn receive(
    axum::extract::State(inbox): axum::extract::State<Inbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    inbox.got.lock().unwrap().push(Got {
        key: header("idempotency-key"),
        authorization: header("authorization"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = inbox.script.lock().unwrap().pop_front();
    match reply {
        None | Some(Reply::Status(200)) => StatusCode::OK.into_response(),
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Reply::RetryAfter(code, after)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
            "slow down",
        )
            .into_response(),
        Some(Reply::Slow(hold)) => {
            tokio::time::sleep(hold).await;
            StatusCode::OK.into_response()
        }
    }
}

// ---- set-up ------------------------------------------------------------------------

struct Settings {
    group_wait: &'static str,
    repeat_interval: &'static str,
    max_attempts: u32,
    timeout: &'static str,
    lease: &'static str,
}

const QUICK: Settings = Settings {
    group_wait: "0s",
    repeat_interval: "never",
    max_attempts: 10,
    timeout: "2s",
    lease: "10s",
};

fn config_text(url: &str, s: &Settings) -> String {
    format!(
        r#"
history_cutoff = "1h"

[delivery]
max_attempts = {max_attempts}
initial_backoff = "200ms"
max_backoff = "1s"
timeout = "{timeout}"
poll_interval = "100ms"
lease = "{lease}"

[[receivers]]
name = "ops"
kind = "webhook"
url = "{url}"
headers = {{ Authorization = "Bearer receiver-secret" }}

[default_route]
receiver = "ops"
group_wait = "{group_wait}"
repeat_interval = "{repeat_interval}"
send_resolved = true
"#,
        max_attempts = s.max_attempts,
        timeout = s.timeout,
        lease = s.lease,
        group_wait = s.group_wait,
        repeat_interval = s.repeat_interval,
    )
}

/// A server with notifications on; the temp dirs live as long as the returned value.
struct Notifying {
    app: TestApp,
    config: std::path::PathBuf,
    _dirs: (Option<tempfile::TempDir>, tempfile::TempDir),
}

async fn spawn_notifying(engine: Engine, url: &str, settings: &Settings) -> Option<Notifying> {
    let (database_url, db_dir) = fresh_database(engine).await?;
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("notify.toml");
    std::fs::write(&config, config_text(url, settings)).expect("write config");
    let app = spawn_notifying_on(&database_url, &config).await;
    Some(Notifying {
        app,
        config,
        _dirs: (db_dir, config_dir),
    })
}

async fn spawn_notifying_on(database_url: &str, config: &std::path::Path) -> TestApp {
    let mut args = alert_ledger::config::LedgerArgs::with_database_url(database_url);
    args.acquire_timeout_seconds = 60;
    args.notify_config = Some(config.to_path_buf());
    spawn_app_with(args).await
}

fn event(device: &str, id: &str, kind: &str, occurred_at: DateTime<Utc>) -> Value {
    json!({
        "event_id": id,
        "device_id": device,
        "alert_key": "offline",
        "kind": kind,
        "occurred_at": occurred_at.to_rfc3339(),
        "severity": "critical",
        "summary": format!("{device} {kind}"),
    })
}

async fn record(app: &TestApp, body: Value) {
    let answer = app.post(&body).await;
    assert!(
        answer.status == 201 || answer.status == 200,
        "{}: {}",
        answer.status,
        answer.body
    );
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delivery_log(app: &TestApp, device: &str) -> Vec<Value> {
    let answer = app
        .get(&format!("/v1/notifications?device_id={device}&limit=1000"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn statuses(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .map(|m| {
            (
                label_of_row(m),
                m["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn label_of_row(row: &Value) -> String {
    let kind = row["message"].as_str().unwrap_or("?");
    if kind == "reminder" {
        format!(
            "reminder#{}.{}",
            row["episode_number"], row["reminder_number"]
        )
    } else {
        format!("{kind}#{}", row["episode_number"])
    }
}

/// The incident on two devices: `race-in-order` gets the alarm, then the recovery
/// 242 ms later; `race-reversed` gets them the other way round.
async fn play_the_race(app: &TestApp) {
    let alarm_at = Utc::now() - chrono::Duration::seconds(2);
    let recovery_at = alarm_at + chrono::Duration::milliseconds(242);
    record(app, event("race-in-order", "a", "alarm", alarm_at)).await;
    tokio::time::sleep(Duration::from_millis(242)).await;
    record(app, event("race-in-order", "r", "recovery", recovery_at)).await;
    record(app, event("race-reversed", "r", "recovery", recovery_at)).await;
    tokio::time::sleep(Duration::from_millis(242)).await;
    record(app, event("race-reversed", "a", "alarm", alarm_at)).await;
}

// ---- scenarios ---------------------------------------------------------------------

/// BRIEF's incident, both arrival orders, with `group_wait` 1 s: nobody is paged.
async fn the_242_ms_race_sends_nothing_within_group_wait(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let settings = Settings {
        group_wait: "1s",
        repeat_interval: "300ms",
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    play_the_race(&n.app).await;

    // Past group_wait, and then some reminders' worth.
    eventually(
        "the firing message to be decided",
        Duration::from_secs(10),
        || async {
            delivery_log(&n.app, "race-in-order")
                .await
                .iter()
                .all(|m| m["status"] != "pending")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    assert_eq!(receiver.got().len(), 0, "{:?}", receiver.got());
    let log = delivery_log(&n.app, "race-in-order").await;
    assert_eq!(
        statuses(&log),
        vec![
            ("firing#1".to_string(), "suppressed".to_string()),
            ("resolved#1".to_string(), "suppressed".to_string())
        ]
    );
    assert_eq!(log[0]["reason"], "resolved before it was sent");
    assert_eq!(log[1]["reason"], "nobody was told this episode fired");
    assert_eq!(log[0]["attempts"], 0);
    // The episode never fired in the ledger's state as projected: nothing scheduled.
    assert_eq!(delivery_log(&n.app, "race-reversed").await.len(), 0);
    for device in ["race-in-order", "race-reversed"] {
        assert_eq!(n.app.alert(device, "offline").await["status"], "resolved");
    }
}

/// Without `group_wait` the alarm may be announced, but then exactly one resolved
/// follows and never a reminder after it.
async fn without_group_wait_the_race_sends_at_most_firing_then_resolved(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let settings = Settings {
        repeat_interval: "300ms",
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    play_the_race(&n.app).await;
    eventually(
        "every message to be decided",
        Duration::from_secs(10),
        || async {
            let log = delivery_log(&n.app, "race-in-order").await;
            log.len() >= 2 && log.iter().all(|m| m["status"] != "pending")
        },
    )
    .await;
    // Three reminder intervals: a reminder would have shown up by now.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // Nothing, or firing#1 … resolved#1 with at most reminders sent while the ledger
    // still held the alert firing in between: never anything after the resolve.
    let in_order = receiver.messages("race-in-order");
    if !in_order.is_empty() {
        assert_eq!(
            in_order.first().map(String::as_str),
            Some("firing#1"),
            "{in_order:?}"
        );
        assert_eq!(
            in_order.last().map(String::as_str),
            Some("resolved#1"),
            "{in_order:?}"
        );
        assert!(
            in_order[1..in_order.len() - 1]
                .iter()
                .all(|m| m.starts_with("reminder#1.")),
            "{in_order:?}"
        );
    }
    assert_eq!(receiver.messages("race-reversed"), Vec::<String>::new());
    // A reminder may have been scheduled while the alert fired; it was never sent.
    let log = delivery_log(&n.app, "race-in-order").await;
    for reminder in log.iter().filter(|m| m["message"] == "reminder") {
        assert_eq!(reminder["status"], "suppressed", "{reminder}");
        assert_eq!(reminder["attempts"], 0, "{reminder}");
    }
    for got in receiver.got() {
        assert_eq!(got.key, got.body["idempotency_key"]);
        assert_eq!(got.authorization, "Bearer receiver-secret");
    }
}

/// Reminders every `repeat_interval` while firing; the recovery stops them and exactly
/// one resolved message follows.
async fn reminders_repeat_until_the_recovery_then_one_resolved(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let settings = Settings {
        repeat_interval: "400ms",
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    let started = Utc::now();
    record(&n.app, event("pump-7", "a1", "alarm", started)).await;
    eventually("two reminders", Duration::from_secs(15), || async {
        receiver.messages("pump-7").len() >= 3
    })
    .await;
    record(&n.app, event("pump-7", "r1", "recovery", Utc::now())).await;
    eventually("the resolved message", Duration::from_secs(10), || async {
        receiver
            .messages("pump-7")
            .contains(&"resolved#1".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let messages = receiver.messages("pump-7");
    let resolved_at = messages.iter().position(|m| m == "resolved#1").unwrap();
    assert_eq!(resolved_at, messages.len() - 1, "{messages:?}");
    assert_eq!(messages[0], "firing#1");
    let reminders: Vec<String> = (1..resolved_at)
        .map(|i| format!("reminder#1.{i}"))
        .collect();
    assert_eq!(messages[1..resolved_at].to_vec(), reminders);
    assert!(resolved_at >= 3, "{messages:?}");
    // Reminders are repeat_interval apart, counted from the previous delivery.
    let sent: Vec<DateTime<Utc>> = receiver
        .got()
        .iter()
        .map(|g| g.body["sent_at"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in sent[..resolved_at].windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::milliseconds(400),
            "{sent:?}"
        );
    }
    let log = delivery_log(&n.app, "pump-7").await;
    // The reminder scheduled after the last one sent was suppressed, not sent.
    let last = log
        .iter()
        .filter(|m| m["message"] == "reminder")
        .max_by_key(|m| m["reminder_number"].as_i64())
        .unwrap();
    assert_eq!(label_of_row(last), format!("reminder#1.{resolved_at}"));
    assert_eq!(last["status"], "suppressed");
    assert_eq!(last["reason"], "resolved before it was sent");
    assert_eq!(
        statuses(&log)
            .iter()
            .filter(|(_, s)| s == "delivered")
            .count(),
        resolved_at + 1
    );
}

/// An acknowledgement stops reminders for the current episode; the next episode pages
/// again. The acknowledgement is in the audit trail.
async fn an_acknowledgement_stops_reminders_for_this_episode_only(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let settings = Settings {
        repeat_interval: "400ms",
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    let app = &n.app;
    let ack = |body: Value| async move {
        let response = app
            .client
            .post(format!(
                "{}/v1/devices/door-2/alerts/offline/ack",
                app.address
            ))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    // Nothing to acknowledge yet.
    assert_eq!(ack(json!({"by": "ana"})).await.0, 404);
    record(app, event("door-2", "a1", "alarm", Utc::now())).await;
    eventually("a reminder", Duration::from_secs(10), || async {
        receiver.messages("door-2").len() >= 2
    })
    .await;
    // Bad bodies change nothing.
    for (body, field) in [
        (json!({}), "by"),
        (json!({"by": ""}), "by"),
        (json!({"by": "ana", "why": "x"}), "why"),
        (json!({"by": "ana", "reason": "a".repeat(1025)}), "reason"),
        (json!({"by": "a\u{0}b"}), "by"),
    ] {
        let (status, problem) = ack(body).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, acked) =
        ack(json!({"by": "ana", "reason": "on site", "event_id": "ack-door-2-1"})).await;
    assert_eq!(status, 201, "{acked}");
    let acked_at = Utc::now();
    assert_eq!(acked["episode"], 1);
    assert_eq!(acked["acknowledged_by"], "ana");
    // The same request again is a duplicate; someone else's is told who was first.
    let (status, again) =
        ack(json!({"by": "ana", "reason": "on site", "event_id": "ack-door-2-1"})).await;
    assert_eq!(
        (status, again["duplicate"].clone()),
        (200, json!(true)),
        "{again}"
    );
    let (status, second) = ack(json!({"by": "bo"})).await;
    assert_eq!(status, 200);
    assert_eq!(second["already_acknowledged"], true);
    assert_eq!(second["acknowledged_by"], "ana");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late_reminders: Vec<Got> = receiver
        .got()
        .into_iter()
        .filter(|g| g.body["message"] == "reminder")
        .filter(|g| {
            let sent: DateTime<Utc> = g.body["sent_at"].as_str().unwrap().parse().unwrap();
            sent > acked_at + chrono::Duration::milliseconds(100)
        })
        .collect();
    assert_eq!(late_reminders.len(), 0, "{late_reminders:?}");
    let log = delivery_log(app, "door-2").await;
    let last = log.last().unwrap();
    assert_eq!(
        (last["status"].clone(), last["reason"].clone()),
        (json!("suppressed"), json!("acknowledged"))
    );

    // Recovery: the announced episode resolves; an ack now has nothing to stop.
    record(app, event("door-2", "r1", "recovery", Utc::now())).await;
    eventually("resolved#1", Duration::from_secs(10), || async {
        receiver
            .messages("door-2")
            .contains(&"resolved#1".to_string())
    })
    .await;
    let (status, problem) = ack(json!({"by": "ana"})).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://alert-ledger.dev/problems/alert-not-firing"
    );
    // A genuine re-fire is a new episode with its own messages and reminders.
    record(app, event("door-2", "a2", "alarm", Utc::now())).await;
    eventually(
        "the second episode's reminder",
        Duration::from_secs(10),
        || async {
            receiver
                .messages("door-2")
                .contains(&"reminder#2.1".to_string())
        },
    )
    .await;
    assert!(receiver
        .messages("door-2")
        .contains(&"firing#2".to_string()));

    // The acknowledgement is part of the audit trail.
    let trail = app.trail("door-2").await;
    let acks: Vec<&Value> = trail
        .iter()
        .filter(|e| e["kind"] == "acknowledgement")
        .collect();
    assert_eq!(acks.len(), 1, "{trail:?}");
    assert_eq!(acks[0]["event_id"], "ack-door-2-1");
    assert_eq!(acks[0]["source"], "ana");
    assert_eq!(acks[0]["summary"], "on site");
    let answer = app
        .get("/v1/devices/door-2/events?kind=acknowledgement")
        .await;
    assert_eq!(
        answer.body["events"].as_array().map(Vec::len),
        Some(1),
        "{}",
        answer.body
    );
    // Acknowledgements cannot be submitted as plain events.
    let answer = app
        .post(&event("door-2", "x", "acknowledgement", Utc::now()))
        .await;
    assert_eq!(answer.status, 422);
}

/// A receiver that refuses connections gets the message once it is back.
async fn a_receiver_that_is_down_gets_the_message_when_back(engine: Engine) {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let Some(n) = spawn_notifying(engine, &url, &QUICK).await else {
        return;
    };
    record(&n.app, event("gate-1", "a1", "alarm", Utc::now())).await;
    eventually("two failed attempts", Duration::from_secs(10), || async {
        delivery_log(&n.app, "gate-1").await[0]["attempts"].as_i64() >= Some(2)
    })
    .await;
    let log = delivery_log(&n.app, "gate-1").await;
    assert!(
        log[0]["status"] == "pending" || log[0]["status"] == "delivering",
        "{}",
        log[0]
    );
    assert!(log[0]["next_attempt_at"].is_string(), "{}", log[0]);
    assert_eq!(log[0]["attempt_log"][0]["outcome"], "retry");
    assert!(log[0]["attempt_log"][0]["status_code"].is_null());
    assert!(log[0]["last_error"].is_string());
    assert!(
        !log[0]["last_error"].as_str().unwrap().contains("/hook"),
        "{}",
        log[0]
    );

    let receiver = Receiver::start(port, vec![]).await;
    eventually("delivery", Duration::from_secs(15), || async {
        delivery_log(&n.app, "gate-1").await[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(receiver.messages("gate-1"), vec!["firing#1"]);
    let log = delivery_log(&n.app, "gate-1").await;
    let attempts = log[0]["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["outcome"], "delivered");
    assert_eq!(attempts.last().unwrap()["status_code"], 200);
    assert_eq!(log[0]["attempts"].as_i64(), Some(attempts.len() as i64));
}

/// 400 is permanent: dead-lettered after one attempt. 503 is retried, and a receiver
/// that keeps failing is dead-lettered after `max_attempts`.
async fn a_receiver_answering_400_dead_letters_at_once(engine: Engine) {
    let receiver = Receiver::start(
        0,
        vec![
            Reply::Status(400),
            Reply::Status(503),
            Reply::Status(503),
            Reply::Status(503),
        ],
    )
    .await;
    let settings = Settings {
        max_attempts: 3,
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    record(&n.app, event("valve-1", "a1", "alarm", Utc::now())).await;
    eventually("the first dead letter", Duration::from_secs(10), || async {
        delivery_log(&n.app, "valve-1").await[0]["status"] == "dead"
    })
    .await;
    record(&n.app, event("valve-2", "a1", "alarm", Utc::now())).await;
    eventually(
        "the second dead letter",
        Duration::from_secs(15),
        || async { delivery_log(&n.app, "valve-2").await[0]["status"] == "dead" },
    )
    .await;

    let refused = &delivery_log(&n.app, "valve-1").await[0];
    assert_eq!(refused["attempts"], 1);
    assert_eq!(refused["last_status_code"], 400);
    assert_eq!(
        refused["reason"],
        "the receiver refused it with 400, which is not retried"
    );
    let failing = &delivery_log(&n.app, "valve-2").await[0];
    assert_eq!(failing["attempts"], 3);
    assert_eq!(failing["reason"], "gave up after 3 attempts");
    let codes: Vec<&Value> = failing["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, vec![&json!(503), &json!(503), &json!(503)]);
    let dead = n.app.get("/v1/notifications?status=dead").await;
    assert_eq!(dead.body["notifications"].as_array().map(Vec::len), Some(2));
    // Nothing was delivered, so nothing says the alert is over later either.
    record(&n.app, event("valve-1", "r1", "recovery", Utc::now())).await;
    eventually(
        "the resolved message decided",
        Duration::from_secs(10),
        || async {
            let log = delivery_log(&n.app, "valve-1").await;
            log.len() == 2 && log[1]["status"] == "suppressed"
        },
    )
    .await;
    assert_eq!(receiver.got().len(), 4);
    let metrics = n.app.get("/metrics").await.body;
    let metrics = metrics.as_str().unwrap_or_default();
    for line in [
        "alert_ledger_notifications_total{outcome=\"delivered\"} 0",
        "alert_ledger_notifications_total{outcome=\"retried\"} 2",
        "alert_ledger_notifications_total{outcome=\"dead\"} 2",
        "alert_ledger_notifications_total{outcome=\"suppressed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

/// `Retry-After` on a 429 is honoured even when the backoff would be shorter.
async fn retry_after_is_honoured(engine: Engine) {
    let receiver = Receiver::start(0, vec![Reply::RetryAfter(429, "2")]).await;
    let Some(n) = spawn_notifying(engine, &receiver.url, &QUICK).await else {
        return;
    };
    record(&n.app, event("fan-1", "a1", "alarm", Utc::now())).await;
    eventually("delivery", Duration::from_secs(15), || async {
        delivery_log(&n.app, "fan-1").await[0]["status"] == "delivered"
    })
    .await;
    let log = delivery_log(&n.app, "fan-1").await;
    let attempts = log[0]["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status_code"], 429);
    let first: DateTime<Utc> = attempts[0]["started_at"].as_str().unwrap().parse().unwrap();
    let second: DateTime<Utc> = attempts[1]["started_at"].as_str().unwrap().parse().unwrap();
    assert!(
        second - first >= chrono::Duration::seconds(2),
        "{first} {second}"
    );
}

/// History never pages: an episode that opened before the cut-off schedules nothing,
/// and a rebuild schedules nothing at all.
async fn history_and_rebuilds_send_nothing(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let Some(n) = spawn_notifying(engine, &receiver.url, &QUICK).await else {
        return;
    };
    let long_ago = Utc::now() - chrono::Duration::days(3);
    record(&n.app, event("old-1", "a1", "alarm", long_ago)).await;
    record(&n.app, event("new-1", "a1", "alarm", Utc::now())).await;
    eventually(
        "the new alarm's message",
        Duration::from_secs(10),
        || async { receiver.got().len() == 1 },
    )
    .await;
    assert_eq!(delivery_log(&n.app, "old-1").await.len(), 0);
    assert_eq!(n.app.alert("old-1", "offline").await["status"], "firing");

    let before = n.app.get("/v1/notifications?limit=1000").await.body;
    let answer = n
        .app
        .client
        .post(format!("{}/v1/admin/rebuild", n.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    eventually("the rebuild", Duration::from_secs(20), || async {
        let status = n.app.get("/v1/admin/rebuild").await.body;
        status["running"] == false && !status["last"].is_null()
    })
    .await;
    assert_eq!(
        n.app.get("/v1/admin/rebuild").await.body["last"]["result"],
        "rebuilt"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 1);
    let after = n.app.get("/v1/notifications?limit=1000").await.body;
    assert_eq!(
        before["notifications"].as_array().map(Vec::len),
        after["notifications"].as_array().map(Vec::len)
    );
}

/// Two servers on one database: every message is delivered by exactly one of them.
async fn two_servers_deliver_each_message_once(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let Some(n) = spawn_notifying(engine, &receiver.url, &QUICK).await else {
        return;
    };
    let second = spawn_notifying_on(&n.app.database_url, &n.config).await;
    let devices: Vec<String> = (0..20).map(|i| format!("rack-{i:02}")).collect();
    let mut writes = Vec::new();
    for (i, device) in devices.iter().enumerate() {
        let app = if i % 2 == 0 { &n.app } else { &second };
        writes.push(record(app, event(device, "a1", "alarm", Utc::now())));
    }
    futures::future::join_all(writes).await;
    eventually("20 deliveries", Duration::from_secs(20), || async {
        receiver.got().len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for got in receiver.got() {
        *by_key.entry(got.key).or_default() += 1;
    }
    assert_eq!(by_key.len(), 20);
    assert!(by_key.values().all(|count| *count == 1), "{by_key:?}");
    second.stop().await;
}

/// The breaker's case: the firing message's attempts time out on our side although the
/// receiver (slow, not down) shows them; the alert then resolves, so the retry is
/// suppressed. The chat shows an open alert, so it must get exactly one resolved message.
async fn a_firing_message_that_timed_out_still_gets_its_resolved_message(engine: Engine) {
    let receiver = Receiver::start(
        0,
        vec![
            Reply::Slow(Duration::from_secs(3)),
            Reply::Slow(Duration::from_secs(3)),
        ],
    )
    .await;
    let settings = Settings {
        timeout: "1s",
        ..QUICK
    };
    let Some(n) = spawn_notifying(engine, &receiver.url, &settings).await else {
        return;
    };
    record(&n.app, event("slow-1", "a1", "alarm", Utc::now())).await;
    eventually("the first attempt", Duration::from_secs(10), || async {
        !receiver.messages("slow-1").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    record(&n.app, event("slow-1", "r1", "recovery", Utc::now())).await;
    eventually("resolved#1", Duration::from_secs(20), || async {
        receiver
            .messages("slow-1")
            .contains(&"resolved#1".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got: Vec<Got> = receiver
        .got()
        .into_iter()
        .filter(|g| g.body["device_id"] == "slow-1")
        .collect();
    let labels: Vec<String> = got.iter().map(|g| label(&g.body)).collect();
    let firing: Vec<&Got> = got
        .iter()
        .filter(|g| g.body["message"] == "firing")
        .collect();
    assert!(!firing.is_empty(), "{labels:?}");
    assert!(
        firing.iter().all(|g| g.key == firing[0].key),
        "repeats carry one key"
    );
    assert_eq!(
        labels.iter().filter(|l| *l == "resolved#1").count(),
        1,
        "{labels:?}"
    );
    assert_eq!(labels.last().map(String::as_str), Some("resolved#1"));
    let log = delivery_log(&n.app, "slow-1").await;
    let resolved = log
        .iter()
        .find(|m| m["message"] == "resolved")
        .expect("a resolved row");
    assert_eq!(resolved["status"], "delivered", "{log:?}");
}

/// The breaker's case: episode 1 (alarm a1, a minute ago) is announced; then late
/// history arrives, an alarm two minutes ago and its recovery ninety seconds ago. The
/// ledger renumbers: episode 1 is now that old, closed stretch and a1 opens episode 2,
/// still firing. "resolved#1" would tell people the alert is over while it fires: it is
/// suppressed, and episode 2 gets its own cycle (firing#2, then resolved#2 at the end).
async fn late_history_that_renumbers_episodes_resolves_nothing_still_firing(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let Some(n) = spawn_notifying(engine, &receiver.url, &QUICK).await else {
        return;
    };
    let now = Utc::now();
    record(
        &n.app,
        event(
            "renum-1",
            "a1",
            "alarm",
            now - chrono::Duration::seconds(60),
        ),
    )
    .await;
    eventually("firing#1", Duration::from_secs(10), || async {
        receiver.messages("renum-1") == vec!["firing#1".to_string()]
    })
    .await;
    record(
        &n.app,
        event(
            "renum-1",
            "a0",
            "alarm",
            now - chrono::Duration::seconds(120),
        ),
    )
    .await;
    record(
        &n.app,
        event(
            "renum-1",
            "r0",
            "recovery",
            now - chrono::Duration::seconds(90),
        ),
    )
    .await;
    eventually("firing#2", Duration::from_secs(10), || async {
        receiver
            .messages("renum-1")
            .contains(&"firing#2".to_string())
    })
    .await;
    eventually("every message decided", Duration::from_secs(10), || async {
        delivery_log(&n.app, "renum-1")
            .await
            .iter()
            .all(|m| m["status"] != "pending" && m["status"] != "delivering")
    })
    .await;
    assert_eq!(
        receiver.messages("renum-1"),
        vec!["firing#1".to_string(), "firing#2".to_string()]
    );
    let log = delivery_log(&n.app, "renum-1").await;
    let resolved_1 = log
        .iter()
        .find(|m| m["message"] == "resolved" && m["episode_number"] == 1)
        .expect("resolved#1 scheduled");
    assert_eq!(resolved_1["status"], "suppressed");
    assert_eq!(
        resolved_1["reason"],
        "the announced stretch still fires (late history renumbered the episodes); its own cycle announces its end"
    );

    record(&n.app, event("renum-1", "r1", "recovery", Utc::now())).await;
    eventually("resolved#2", Duration::from_secs(10), || async {
        receiver
            .messages("renum-1")
            .contains(&"resolved#2".to_string())
    })
    .await;
    assert_eq!(
        receiver.messages("renum-1"),
        vec![
            "firing#1".to_string(),
            "firing#2".to_string(),
            "resolved#2".to_string()
        ]
    );
}

/// The third breaker's cases. (1) Late history renumbers the announced episode and ends
/// it in the same batch: the announced stretch gets its resolved message. (2) A late
/// alarm merges two episodes into one and a genuine new outage then takes the freed
/// number: every announced stretch is resolved, and the new outage pages.
async fn renumbered_and_merged_episodes_still_end_and_a_new_outage_pages(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let Some(n) = spawn_notifying(engine, &receiver.url, &QUICK).await else {
        return;
    };
    let app = &n.app;
    let ago = |seconds: i64| Utc::now() - chrono::Duration::seconds(seconds);
    let decided = |device: &'static str| async move {
        eventually("every message decided", Duration::from_secs(10), || async {
            delivery_log(app, device)
                .await
                .iter()
                .all(|m| m["status"] != "pending" && m["status"] != "delivering")
        })
        .await;
    };

    // (1)
    record(app, event("renum-2", "a1", "alarm", ago(60))).await;
    eventually("firing#1", Duration::from_secs(10), || async {
        receiver.messages("renum-2") == vec!["firing#1".to_string()]
    })
    .await;
    let batch = json!([
        event("renum-2", "a0", "alarm", ago(120)),
        event("renum-2", "r0", "recovery", ago(90)),
        event("renum-2", "r1", "recovery", ago(30)),
    ]);
    assert_eq!(app.post(&batch).await.status, 200);
    eventually("resolved#1", Duration::from_secs(10), || async {
        receiver.messages("renum-2").len() == 2
    })
    .await;
    decided("renum-2").await;
    assert_eq!(
        receiver.messages("renum-2"),
        vec!["firing#1".to_string(), "resolved#1".to_string()]
    );
    let resolved = receiver
        .got()
        .into_iter()
        .find(|g| g.body["device_id"] == "renum-2" && g.body["message"] == "resolved")
        .expect("resolved");
    // It reports the announced stretch (a1 to r1), not the older episode now numbered 1.
    assert_eq!(
        resolved.body["duration_ms"]
            .as_i64()
            .map(|ms| (ms + 500) / 1000),
        Some(30),
        "{}",
        resolved.body
    );

    // (2)
    record(app, event("merge-1", "a1", "alarm", ago(600))).await;
    eventually("firing#1", Duration::from_secs(10), || async {
        receiver
            .messages("merge-1")
            .contains(&"firing#1".to_string())
    })
    .await;
    let mut r1 = event("merge-1", "r1", "recovery", ago(540));
    r1["resolves"] = json!("aX");
    record(app, r1).await;
    record(app, event("merge-1", "a2", "alarm", ago(480))).await;
    eventually("firing#2", Duration::from_secs(10), || async {
        receiver
            .messages("merge-1")
            .contains(&"firing#2".to_string())
    })
    .await;
    // aX arrives: r1 now closes one episode [a1, aX], and the alert is resolved.
    record(app, event("merge-1", "aX", "alarm", ago(420))).await;
    decided("merge-1").await;
    // A genuine new outage takes the number 2 again.
    record(app, event("merge-1", "a3", "alarm", ago(5))).await;
    eventually(
        "the new outage's firing",
        Duration::from_secs(10),
        || async {
            receiver
                .messages("merge-1")
                .iter()
                .filter(|m| *m == "firing#2")
                .count()
                == 2
        },
    )
    .await;
    decided("merge-1").await;
    let mut labels = receiver.messages("merge-1");
    labels.sort();
    assert_eq!(
        labels,
        vec![
            "firing#1",
            "firing#2",
            "firing#2",
            "resolved#1",
            "resolved#2"
        ],
        "every announced stretch resolved once, and the new outage paged"
    );
    let keys: std::collections::BTreeSet<String> = receiver
        .got()
        .into_iter()
        .filter(|g| g.body["device_id"] == "merge-1")
        .map(|g| g.key)
        .collect();
    assert_eq!(keys.len(), 5, "five distinct messages");
}

/// The third breaker's case: servers on one database with different receivers (a
/// rolling configuration change). A server that claims a message for a receiver it does
/// not know leaves it pending for one that does, instead of dead-lettering it.
async fn a_server_without_the_receiver_leaves_the_message_to_one_with_it(engine: Engine) {
    let receiver = Receiver::start(0, vec![]).await;
    let Some((database_url, _db_dir)) = fresh_database(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let with_ops = dir.path().join("ops.toml");
    let settings = Settings {
        group_wait: "1s",
        ..QUICK
    };
    std::fs::write(&with_ops, config_text(&receiver.url, &settings)).expect("write");
    let without_ops = dir.path().join("other.toml");
    std::fs::write(
        &without_ops,
        config_text(&receiver.url, &settings)
            .replace("name = \"ops\"", "name = \"other\"")
            .replace("receiver = \"ops\"", "receiver = \"other\""),
    )
    .expect("write");

    // Scheduled for `ops`; this server stops before it is due.
    let first = spawn_notifying_on(&database_url, &with_ops).await;
    record(&first, event("rolling-1", "a1", "alarm", Utc::now())).await;
    first.stop().await;
    // A server that only knows `other` claims it when due, and leaves it.
    let other = spawn_notifying_on(&database_url, &without_ops).await;
    eventually(
        "the claim by the other server",
        Duration::from_secs(10),
        || async {
            delivery_log(&other, "rolling-1")
                .await
                .first()
                .is_some_and(|m| {
                    m["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("not in the configuration"))
                })
        },
    )
    .await;
    let row = delivery_log(&other, "rolling-1").await[0].clone();
    assert_eq!(row["status"], "pending", "{row}");
    assert_eq!(row["attempts"], 0, "{row}");
    assert!(receiver.got().is_empty());
    other.stop().await;
    // A server with `ops` delivers it.
    let back = spawn_notifying_on(&database_url, &with_ops).await;
    eventually(
        "delivery by a server with the receiver",
        Duration::from_secs(20),
        || async { receiver.messages("rolling-1") == vec!["firing#1".to_string()] },
    )
    .await;
    back.stop().await;
}

on_both_engines!(
    a_server_without_the_receiver_leaves_the_message_to_one_with_it,
    renumbered_and_merged_episodes_still_end_and_a_new_outage_pages,
    a_firing_message_that_timed_out_still_gets_its_resolved_message,
    late_history_that_renumbers_episodes_resolves_nothing_still_firing,
    the_242_ms_race_sends_nothing_within_group_wait,
    without_group_wait_the_race_sends_at_most_firing_then_resolved,
    reminders_repeat_until_the_recovery_then_one_resolved,
    an_acknowledgement_stops_reminders_for_this_episode_only,
    a_receiver_that_is_down_gets_the_message_when_back,
    a_receiver_answering_400_dead_letters_at_once,
    retry_after_is_honoured,
    history_and_rebuilds_send_nothing,
    two_servers_deliver_each_message_once,
);

/// A notification config file for server processes; the directory lives as long as the
/// returned guard.
fn config_file(url: &str, settings: &Settings) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify.toml");
    std::fs::write(&path, config_text(url, settings)).expect("write config");
    let path = path.display().to_string();
    (dir, path)
}

/// Record one event on a server process; it must be new.
async fn record_at(client: &reqwest::Client, address: &str, body: &Value) {
    let response = client
        .post(format!("{address}/v1/events"))
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 201);
}

/// A server process's delivery log (`query` as in `GET /v1/notifications`).
async fn log_at(client: &reqwest::Client, address: &str, query: &str) -> Value {
    client
        .get(format!("{address}/v1/notifications?{query}"))
        .send()
        .await
        .expect("request")
        .json::<Value>()
        .await
        .expect("json")
}

/// SIGKILL a real server while it delivers: after a restart every message is delivered,
/// none is lost, and a repeat carries the same idempotency key.
async fn a_server_killed_mid_delivery_loses_no_message(engine: Engine) {
    let receiver = Receiver::start(0, vec![Reply::Slow(Duration::from_secs(4))]).await;
    let Some((database_url, _db_dir)) = fresh_database(engine).await else {
        return;
    };
    let settings = Settings {
        timeout: "6s",
        lease: "8s",
        ..QUICK
    };
    let (_config_dir, config_path) = config_file(&receiver.url, &settings);
    let env = [("ALERT_LEDGER_NOTIFY_CONFIG", config_path.as_str())];
    let (mut servers, addresses) = start_servers_with(&database_url, 1, &env).await;
    let client = reqwest::Client::new();
    let devices: Vec<String> = (0..5).map(|i| format!("crane-{i}")).collect();
    for device in &devices {
        record_at(
            &client,
            &addresses[0],
            &event(device, "a1", "alarm", Utc::now()),
        )
        .await;
    }
    // The first delivery is being held by the receiver: kill the server now.
    eventually("a delivery in flight", Duration::from_secs(10), || async {
        !receiver.got().is_empty()
    })
    .await;
    servers.0[0].kill().expect("SIGKILL");
    servers.0[0].wait().expect("reap");
    drop(servers);

    let (_servers, addresses) = start_servers_with(&database_url, 1, &env).await;
    eventually(
        "every message delivered",
        Duration::from_secs(40),
        || async {
            let answer = log_at(&client, &addresses[0], "limit=1000").await;
            let rows = answer["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rows.len() == 5 && rows.iter().all(|r| r["status"] == "delivered")
        },
    )
    .await;
    let got = receiver.got();
    let mut by_device: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &got {
        assert_eq!(g.key, g.body["idempotency_key"]);
        by_device
            .entry(g.body["device_id"].as_str().unwrap().to_string())
            .or_default()
            .push(g.key.clone());
    }
    assert_eq!(by_device.len(), 5, "{by_device:?}");
    for keys in by_device.values() {
        // At least once; a repeat only with the same key.
        assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    }
    assert!(
        got.len() > 5,
        "the message in flight at the kill is delivered again"
    );
    let answer = log_at(&client, &addresses[0], "limit=1000").await;
    let abandoned = answer["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["attempt_log"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["outcome"] == "abandoned")
        .count();
    assert!(abandoned >= 1, "{answer}");
}

on_both_engines!(a_server_killed_mid_delivery_loses_no_message);

/// Run `serve` with this notification file; it must refuse to start before opening
/// the database. Returns its stderr.
fn serve_refuses(config_bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("notify.toml");
    std::fs::write(&config, config_bytes).unwrap();
    let database = dir.path().join("ledger.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_alert-ledger"))
        .args(["serve", "--listen", "127.0.0.1:0", "--notify-config"])
        .arg(&config)
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("NO_COLOR", "1")
        .output()
        .expect("run alert-ledger");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        !database.exists(),
        "nothing is opened before the file is checked"
    );
    stderr
}

/// A bad configuration file stops `serve` before it opens anything, naming the line and
/// the reason, and without printing the secret URL.
#[test]
fn a_bad_config_file_is_refused_at_start_with_its_line() {
    let text = config_text("http://127.0.0.1:9/hook?token=very-secret", &QUICK)
        .replace("group_wait = \"0s\"", "group_wait = \"soon\"");
    let stderr = serve_refuses(text.as_bytes());
    assert!(
        stderr.contains(
            "notify.toml: line 20: group_wait is not a duration (write it like 250ms, 30s, 5m, 4h or 1d)\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("very-secret"), "{stderr}");
}

/// A header value written as a string instead of a table: serde would quote it.
#[test]
fn a_refused_config_file_does_not_echo_a_header_value() {
    let text = config_text("http://127.0.0.1:9/hook?token=very-secret", &QUICK).replace(
        "headers = { Authorization = \"Bearer receiver-secret\" }",
        "headers = \"Bearer HDRSECRET\"",
    );
    let stderr = serve_refuses(text.as_bytes());
    assert!(
        stderr.contains("notify.toml: line 16: invalid type: a string, expected a map\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("HDRSECRET"), "{stderr}");
    assert!(!stderr.contains("very-secret"), "{stderr}");
}

/// The breaker's huge durations panicked at send time; they are refused at start.
#[test]
fn a_config_file_with_a_huge_duration_is_refused_at_start() {
    let settings = Settings {
        repeat_interval: "300000000y",
        ..QUICK
    };
    let stderr = serve_refuses(config_text("http://127.0.0.1:9/hook", &settings).as_bytes());
    assert!(
        stderr.contains("notify.toml: line 21: repeat_interval must be between 100ms and 365d\n"),
        "{stderr}"
    );
}

/// Over 1 MiB is refused without being read whole; bytes that are not UTF-8 are
/// refused with the line they are on.
#[test]
fn an_oversized_or_non_utf8_config_file_is_refused_at_start() {
    let mut big = config_text("http://127.0.0.1:9/hook", &QUICK).into_bytes();
    big.resize(1024 * 1024 + 1, b'#');
    let stderr = serve_refuses(&big);
    assert!(
        stderr.contains(
            "notify.toml: the file is larger than 1048576 bytes (1 MiB), the most a configuration file may be\n"
        ),
        "{stderr}"
    );

    let latin1 = config_text("http://127.0.0.1:9/hook", &QUICK)
        .replace("name = \"ops\"", "name = \"op\u{e9}s\"")
        .replace('\u{e9}', "\u{1}");
    let mut bytes = latin1.into_bytes();
    let at = bytes.iter().position(|b| *b == 1).expect("the marker");
    bytes[at] = 0xe9;
    let stderr = serve_refuses(&bytes);
    assert!(
        stderr.contains(
            "notify.toml: line 13: the file is not UTF-8 text; the first invalid byte is on this line\n"
        ),
        "{stderr}"
    );
}

/// The third breaker's case: a server is killed while its firing attempt is in flight;
/// the alert resolves before the lease runs out, so the message is suppressed when it is
/// claimed again. The attempt that died must not stay `in_flight` for ever, and the
/// receiver, which may be showing the alert, gets its end.
async fn an_attempt_cut_off_by_a_kill_is_abandoned_even_when_its_message_is_suppressed(
    engine: Engine,
) {
    let receiver = Receiver::start(0, vec![Reply::Slow(Duration::from_secs(6))]).await;
    let Some((database_url, _db_dir)) = fresh_database(engine).await else {
        return;
    };
    let settings = Settings {
        timeout: "4s",
        lease: "5s",
        ..QUICK
    };
    let (_config_dir, config_path) = config_file(&receiver.url, &settings);
    let env = [("ALERT_LEDGER_NOTIFY_CONFIG", config_path.as_str())];
    let (mut servers, addresses) = start_servers_with(&database_url, 1, &env).await;
    let client = reqwest::Client::new();
    record_at(
        &client,
        &addresses[0],
        &event("cut-1", "a1", "alarm", Utc::now()),
    )
    .await;
    eventually("the attempt in flight", Duration::from_secs(10), || async {
        !receiver.got().is_empty()
    })
    .await;
    servers.0[0].kill().expect("SIGKILL");
    servers.0[0].wait().expect("reap");
    drop(servers);
    let (_servers, addresses) = start_servers_with(&database_url, 1, &env).await;
    record_at(
        &client,
        &addresses[0],
        &event("cut-1", "r1", "recovery", Utc::now()),
    )
    .await;
    eventually("the resolved message", Duration::from_secs(20), || async {
        receiver
            .messages("cut-1")
            .contains(&"resolved#1".to_string())
    })
    .await;
    let answer = log_at(&client, &addresses[0], "device_id=cut-1&limit=100").await;
    let rows = answer["notifications"].as_array().unwrap();
    let firing = rows
        .iter()
        .find(|r| r["message"] == "firing")
        .expect("the firing row");
    assert_eq!(firing["status"], "suppressed", "{firing}");
    let outcomes: Vec<&str> = firing["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["abandoned"], "{firing}");
    assert_eq!(
        receiver.messages("cut-1"),
        vec!["firing#1".to_string(), "resolved#1".to_string()]
    );
}

on_both_engines!(an_attempt_cut_off_by_a_kill_is_abandoned_even_when_its_message_is_suppressed);
