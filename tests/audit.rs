//! Audit queries: a device's trail filtered by alert key, kind and a time range on
//! occurred_at or recorded_at; one alert's trail with its episodes.

mod common;

use common::{spawn_app, Engine, TestApp};
use serde_json::{json, Value};

fn ids(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let answer = app.get(path).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.body
}

async fn the_trail_filters_by_key_kind_and_time(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let event = |id: &str, key: &str, kind: &str, at: &str| {
        json!({"event_id": id, "device_id": "audited", "alert_key": key, "kind": kind,
               "occurred_at": format!("2026-11-20T{at}Z")})
    };
    let batch = json!([
        event("a1", "offline", "alarm", "10:00:00"),
        event("r1", "offline", "recovery", "10:00:00.5"),
        event("a2", "offline", "alarm", "11:00:00"),
        event("t1", "temp", "alarm", "10:30:00"),
        {"event_id": "now", "device_id": "audited", "kind": "recovery", "alert_key": "temp"},
    ]);
    assert_eq!(app.post(&batch).await.status, 200);
    let base = "/v1/devices/audited/events";
    assert_eq!(
        ids(&get_ok(&app, &format!("{base}?kind=alarm")).await),
        ["a1", "a2", "t1"]
    );
    assert_eq!(
        ids(&get_ok(&app, &format!("{base}?alert_key=temp")).await),
        ["t1", "now"]
    );
    assert_eq!(
        ids(&get_ok(
            &app,
            &format!("{base}?from=2026-11-20T10:00:00.2Z&to=2026-11-20T11:00:00Z")
        )
        .await),
        ["r1", "t1"],
        "occurred_at range, inclusive start, exclusive end; sub-second times sort right"
    );
    assert_eq!(
        ids(&get_ok(
            &app,
            &format!("{base}?from=2026-11-20T12:45:00%2B02:00&kind=alarm")
        )
        .await),
        ["a2"],
        "offsets are honoured"
    );
    let recorded = get_ok(
        &app,
        &format!("{base}?time=recorded_at&from=2020-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(ids(&recorded).len(), 5);
    let future = get_ok(
        &app,
        &format!("{base}?time=recorded_at&from=2099-01-01T00:00:00Z"),
    )
    .await;
    assert!(ids(&future).is_empty());
    let missing_occurred = get_ok(&app, &format!("{base}?from=2026-12-01T00:00:00Z")).await;
    assert_eq!(
        ids(&missing_occurred),
        ["now"],
        "a missing occurred_at means recorded_at"
    );

    let alert = get_ok(
        &app,
        "/v1/devices/audited/alerts/offline/events?kind=recovery",
    )
    .await;
    assert_eq!(alert["alert"]["status"], "firing");
    assert_eq!(alert["episodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(ids(&alert), ["r1"]);

    for bad in [
        "kind=alarms",
        "time=created_at",
        "from=yesterday",
        "to=2026-11-20T10:00:00",
        "cursor=zzz",
    ] {
        let answer = app.get(&format!("{base}?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    let both = app.get(&format!("{base}?kind=x&time=y")).await;
    assert_eq!(
        both.body["errors"].as_array().map(Vec::len),
        Some(2),
        "every bad parameter named"
    );
}

/// A trail cursor continues the trail it came from and nothing else: tampered numbers,
/// cursors from another device, another filter or another alert are a 400.
async fn a_trail_cursor_only_continues_its_own_trail(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let batch: Vec<Value> = (0..6)
        .flat_map(|n| {
            ["cur-a", "cur-b"].map(|device| {
                json!({"event_id": format!("{device}-{n}"), "device_id": device,
                       "alert_key": if n % 2 == 0 { "offline" } else { "temp" },
                       "kind": "alarm", "occurred_at": format!("2026-11-20T10:0{n}:00Z")})
            })
        })
        .collect();
    assert_eq!(app.post(&Value::Array(batch)).await.status, 200);
    let first = get_ok(&app, "/v1/devices/cur-a/events?limit=2").await;
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_string();
    let next = get_ok(
        &app,
        &format!("/v1/devices/cur-a/events?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&next), ["cur-a-2", "cur-a-3"]);

    let forged = |version: &str| {
        use base64::Engine as _;
        let scope: Vec<String> = {
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let bytes = URL_SAFE_NO_PAD.decode(&cursor).expect("base64");
            serde_json::from_slice(&bytes).expect("json")
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&[version, scope[1].as_str()]).expect("json"))
    };
    let spaced = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes = engine.decode(&cursor).expect("base64");
        let text = String::from_utf8(bytes).expect("utf8").replace(',', " , ");
        engine.encode(text)
    };
    let old_style = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"["-5"]"#)
    };
    for (path, why) in [
        (
            format!("/v1/devices/cur-a/events?cursor={}", forged("-5")),
            "negative",
        ),
        (
            format!("/v1/devices/cur-a/events?cursor={}", forged("+2")),
            "signed",
        ),
        (
            format!("/v1/devices/cur-a/events?cursor={}", forged("02")),
            "leading zero",
        ),
        (
            format!("/v1/devices/cur-a/events?cursor={}", forged("999999")),
            "past the head",
        ),
        (
            format!("/v1/devices/cur-a/events?cursor={old_style}"),
            "one part",
        ),
        (
            format!("/v1/devices/cur-a/events?limit=2&cursor={}", forged("4")),
            "edited version",
        ),
        (
            format!("/v1/devices/cur-a/events?limit=2&cursor={}", forged("1")),
            "edited back",
        ),
        (
            format!("/v1/devices/cur-a/events?limit=2&cursor={spaced}"),
            "not canonical JSON",
        ),
        (
            format!("/v1/devices/cur-b/events?limit=2&cursor={cursor}"),
            "another device",
        ),
        (
            format!("/v1/devices/cur-a/events?limit=2&kind=alarm&cursor={cursor}"),
            "another filter",
        ),
        (
            format!("/v1/devices/cur-a/alerts/offline/events?limit=2&cursor={cursor}"),
            "one alert's trail",
        ),
    ] {
        let answer = app.get(&path).await;
        assert_eq!(answer.status, 400, "{why}: {}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], "cursor", "{why}");
    }
    // One alert's trail hands out cursors of its own, which work.
    let alert = get_ok(&app, "/v1/devices/cur-a/alerts/offline/events?limit=2").await;
    let alert_cursor = alert["next_cursor"].as_str().expect("a cursor");
    let rest = get_ok(
        &app,
        &format!("/v1/devices/cur-a/alerts/offline/events?limit=2&cursor={alert_cursor}"),
    )
    .await;
    assert_eq!(ids(&rest), ["cur-a-4"]);
}

on_both_engines!(
    the_trail_filters_by_key_kind_and_time,
    a_trail_cursor_only_continues_its_own_trail,
);
