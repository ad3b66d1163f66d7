//! `POST /v1/devices/{d}/alerts/{k}/ack` under retries, re-fires, clocks ahead and
//! concurrency: exactly one acknowledgement per episode is recorded, never one after a
//! recovery it did not see, and a retry is answered as what it was.

mod common;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{spawn_app, Answer, Engine, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

fn event(device: &str, id: &str, kind: &str, at: DateTime<Utc>) -> Value {
    json!({
        "event_id": id,
        "device_id": device,
        "alert_key": "offline",
        "kind": kind,
        "occurred_at": at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

async fn record(app: &TestApp, body: Value) {
    let answer = app.post(&body).await;
    assert!(
        answer.status == 201 || answer.status == 200,
        "{}",
        answer.body
    );
}

async fn ack(app: &TestApp, device: &str, body: Value) -> Answer {
    app.request(
        reqwest::Method::POST,
        &format!("/v1/devices/{device}/alerts/offline/ack"),
        Some(&body),
        None,
    )
    .await
}

fn acks_in(trail: &[Value]) -> Vec<&Value> {
    trail
        .iter()
        .filter(|e| e["kind"] == "acknowledgement")
        .collect()
}

/// The breaker's case: an ack retried after its episode resolved and the alert fired
/// again is the same ack of episode 1, not a 409 and not "episode 2".
async fn a_retried_ack_is_answered_as_what_it_was_after_resolve_and_refire(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let start = Utc::now() - Duration::minutes(10);
    record(&app, event("gate-1", "a1", "alarm", start)).await;
    let body = json!({"by": "ana@ops", "reason": "on site", "event_id": "ack-1-x"});
    let first = ack(&app, "gate-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["episode"], 1);

    record(&app, event("gate-1", "r1", "recovery", Utc::now())).await;
    let after_resolve = ack(&app, "gate-1", body.clone()).await;
    assert_eq!(after_resolve.status, 200, "{}", after_resolve.body);
    assert_eq!(after_resolve.body["duplicate"], true);
    assert_eq!(after_resolve.body["episode"], 1);
    assert_eq!(
        after_resolve.body["stream_version"],
        first.body["stream_version"]
    );

    record(&app, event("gate-1", "a2", "alarm", Utc::now())).await;
    let after_refire = ack(&app, "gate-1", body.clone()).await;
    assert_eq!(after_refire.status, 200, "{}", after_refire.body);
    assert_eq!(after_refire.body["duplicate"], true);
    assert_eq!(after_refire.body["episode"], 1);
    // Episode 2 is still unacknowledged: a new ack records and names it.
    let fresh = ack(&app, "gate-1", json!({"by": "bo"})).await;
    assert_eq!(fresh.status, 201, "{}", fresh.body);
    assert_eq!(fresh.body["episode"], 2);

    // The same id with other content is refused and records nothing.
    let other = ack(
        &app,
        "gate-1",
        json!({"by": "mallory", "reason": "on site", "event_id": "ack-1-x"}),
    )
    .await;
    assert_eq!(other.status, 409, "{}", other.body);
    let trail = app.trail("gate-1").await;
    let ids: Vec<&str> = trail
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(&ids[..4], &["a1", "ack-1-x", "r1", "a2"]);
    assert_eq!(acks_in(&trail).len(), 2);
}

/// An alarm dated two minutes ahead (inside the five-minute skew bound) opens an
/// episode that lies after "now": the ack must still acknowledge it, once.
async fn an_ack_of_an_alarm_dated_ahead_acknowledges_its_episode(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let ahead = Utc::now() + Duration::seconds(120);
    record(&app, event("gate-2", "a1", "alarm", ahead)).await;
    let first = ack(&app, "gate-2", json!({"by": "ana", "event_id": "ack3-1"})).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["episode"], 1);
    let second = ack(&app, "gate-2", json!({"by": "bob", "event_id": "ack3-2"})).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["already_acknowledged"], true);
    assert_eq!(second.body["event_id"], "ack3-1");
    assert_eq!(second.body["acknowledged_by"], "ana");
    let trail = app.trail("gate-2").await;
    let acks = acks_in(&trail);
    assert_eq!(acks.len(), 1, "{trail:?}");
    // It took the episode's opening time, so it sorts right after the alarm.
    let acked_at: DateTime<Utc> = acks[0]["occurred_at"].as_str().unwrap().parse().unwrap();
    let opened_at: DateTime<Utc> = trail[0]["occurred_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(acked_at, opened_at);
}

/// Twenty people press "acknowledge" at once: one is recorded, nineteen are told who
/// was first, and the trail holds exactly one acknowledgement.
async fn concurrent_acks_record_exactly_one(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(
        &app,
        event("gate-3", "a1", "alarm", Utc::now() - Duration::minutes(1)),
    )
    .await;
    let answers = join_all((0..20).map(|n| {
        let app = &app;
        async move {
            ack(
                app,
                "gate-3",
                json!({"by": format!("person-{n}"), "event_id": format!("ack-{n}")}),
            )
            .await
        }
    }))
    .await;
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    assert_eq!(created.len(), 1, "{:?}", statuses(&answers));
    let winner = created[0].body["event_id"].clone();
    for answer in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["already_acknowledged"], true);
        assert_eq!(answer.body["event_id"], winner);
    }
    let trail = app.trail("gate-3").await;
    assert_eq!(acks_in(&trail).len(), 1, "{trail:?}");
}

/// Acks racing the recovery: whichever commits first wins, and no acknowledgement is
/// recorded after the recovery (a late one gets 409 and records nothing).
async fn acks_racing_a_recovery_never_land_after_it(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    for round in 0..3 {
        let device = format!("gate-race-{round}");
        record(
            &app,
            event(&device, "a1", "alarm", Utc::now() - Duration::minutes(1)),
        )
        .await;
        let recovery = event(&device, "r1", "recovery", Utc::now());
        let (answers, recovered) = tokio::join!(
            join_all((0..5).map(|_| ack(&app, &device, json!({"by": "ana"})))),
            app.post(&recovery)
        );
        assert_eq!(recovered.status, 201, "{}", recovered.body);
        let mut created = 0;
        for answer in &answers {
            match answer.status {
                201 => created += 1,
                200 => assert_eq!(answer.body["already_acknowledged"], true),
                409 => assert_eq!(
                    answer.body["type"],
                    "https://alert-ledger.dev/problems/alert-not-firing"
                ),
                other => panic!("unexpected {other}: {}", answer.body),
            }
        }
        let trail = app.trail(&device).await;
        let kinds: Vec<&str> = trail.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert!(created <= 1, "{:?}", statuses(&answers));
        assert_eq!(acks_in(&trail).len(), created, "{kinds:?}");
        assert_eq!(
            kinds.last(),
            Some(&"recovery"),
            "an acknowledgement was recorded after the recovery: {kinds:?}"
        );
    }
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    answers.iter().map(|a| a.status).collect()
}

on_both_engines!(
    a_retried_ack_is_answered_as_what_it_was_after_resolve_and_refire,
    an_ack_of_an_alarm_dated_ahead_acknowledges_its_episode,
    concurrent_acks_record_exactly_one,
    acks_racing_a_recovery_never_land_after_it,
);
