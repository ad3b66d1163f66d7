//! Message bodies for each receiver kind. Every body carries the idempotency key (the
//! `Idempotency-Key` header carries it too), so a receiver can drop a repeat delivery.
//!
//! Values from senders (device ids, summaries) cannot become markup: Feishu cards carry
//! them in `plain_text` elements only (never `lark_md`), and Slack text, which has no
//! plain variant for mentions and links, gets Slack's `&amp;`/`&lt;`/`&gt;` escaping.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::config::ReceiverKind;
use super::plan::MessageKind;
use crate::domain::events::stored_time;

/// Everything a message says.
#[derive(Clone, Debug)]
pub struct MessageView {
    pub idempotency_key: String,
    pub kind: MessageKind,
    pub reminder: i64,
    pub device_id: String,
    pub alert_key: String,
    pub episode: i64,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub sent_at: DateTime<Utc>,
}

impl MessageView {
    fn status(&self) -> &'static str {
        match self.kind {
            MessageKind::Resolved => "resolved",
            MessageKind::Firing | MessageKind::Reminder => "firing",
        }
    }

    fn title(&self) -> String {
        let tag = match self.kind {
            MessageKind::Firing => "FIRING".to_string(),
            MessageKind::Reminder => format!("STILL FIRING (reminder {})", self.reminder),
            MessageKind::Resolved => "RESOLVED".to_string(),
        };
        format!("[{tag}] {} · {}", self.device_id, self.alert_key)
    }

    fn duration(&self) -> Option<String> {
        self.closed_at.map(|closed| {
            let seconds = (closed - self.opened_at).num_milliseconds() as f64 / 1000.0;
            format!("{seconds:.3} s")
        })
    }
}

pub fn body(kind: ReceiverKind, message: &MessageView) -> Value {
    match kind {
        ReceiverKind::Webhook => webhook(message),
        ReceiverKind::Slack => slack(message),
        ReceiverKind::Feishu => feishu(message),
    }
}

/// The generic webhook body; its fields are documented in docs/notifications.md.
fn webhook(m: &MessageView) -> Value {
    json!({
        "version": 1,
        "idempotency_key": m.idempotency_key,
        "message": m.kind.as_str(),
        "reminder": m.reminder,
        "status": m.status(),
        "device_id": m.device_id,
        "alert_key": m.alert_key,
        "episode": m.episode,
        "severity": m.severity,
        "summary": m.summary,
        "since": stored_time::format(&m.opened_at),
        "closed_at": m.closed_at.as_ref().map(stored_time::format),
        "duration_ms": m.closed_at.map(|c| (c - m.opened_at).num_milliseconds()),
        "sent_at": stored_time::format(&m.sent_at),
    })
}

/// Slack's documented escaping of message text: `&`, `<` and `>` are control
/// characters there (`<!channel>`, `<@U123>`, `<https://…|label>`), so a device id or
/// summary containing them could ping a channel or fake a link. Every ledger value in a
/// Slack body goes through this.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(m: &MessageView) -> Value {
    let color = match (m.kind, m.severity.as_deref()) {
        (MessageKind::Resolved, _) => "#2eb67d",
        (_, Some("critical")) => "#d40e0d",
        (_, Some("major")) => "#e96d00",
        (_, Some("minor" | "warning")) => "#ecb22e",
        (_, Some("info")) => "#1d9bd1",
        _ => "#868686",
    };
    let field = |title: &str, value: &str| json!({"title": title, "value": slack_escape(value), "short": true});
    let mut fields = vec![
        field("Device", &m.device_id),
        field("Alert", &m.alert_key),
        field("Severity", m.severity.as_deref().unwrap_or("-")),
        field("Since", &stored_time::format(&m.opened_at)),
    ];
    if let Some(duration) = m.duration() {
        fields.push(field("Lasted", &duration));
    }
    json!({
        "text": slack_escape(&m.title()),
        "attachments": [{
            "color": color,
            "text": slack_escape(m.summary.as_deref().unwrap_or("")),
            "fields": fields,
            "footer": slack_escape(&format!("alert-ledger · episode {} · idempotency key {}", m.episode, m.idempotency_key)),
        }],
    })
}

fn feishu(m: &MessageView) -> Value {
    let template = match (m.kind, m.severity.as_deref()) {
        (MessageKind::Resolved, _) => "green",
        (_, Some("critical")) => "red",
        (_, Some("major")) => "orange",
        (_, Some("minor" | "warning")) => "yellow",
        (_, Some("info")) => "blue",
        _ => "grey",
    };
    let field = |label: &str, value: &str| json!({"is_short": true, "text": {"tag": "plain_text", "content": format!("{label}: {value}")}});
    let mut fields = vec![
        field("Device", &m.device_id),
        field("Alert", &m.alert_key),
        field("Severity", m.severity.as_deref().unwrap_or("-")),
        field("Since", &stored_time::format(&m.opened_at)),
    ];
    if let Some(duration) = m.duration() {
        fields.push(field("Lasted", &duration));
    }
    let mut elements = vec![json!({"tag": "div", "fields": fields})];
    if let Some(summary) = &m.summary {
        elements.push(json!({"tag": "div", "text": {"tag": "plain_text", "content": summary}}));
    }
    elements.push(json!({
        "tag": "note",
        "elements": [{"tag": "plain_text", "content": format!(
            "alert-ledger · episode {} · idempotency key {}", m.episode, m.idempotency_key
        )}],
    }));
    json!({
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": true},
            "header": {"template": template, "title": {"tag": "plain_text", "content": m.title()}},
            "elements": elements,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn view(kind: MessageKind) -> MessageView {
        let opened = Utc.with_ymd_and_hms(2026, 12, 3, 21, 5, 0).unwrap();
        MessageView {
            idempotency_key: "k-1".into(),
            kind,
            reminder: 0,
            device_id: "room-3f-east".into(),
            alert_key: "offline".into(),
            episode: 2,
            severity: Some("critical".into()),
            summary: Some("*bold* <b>not markup</b>".into()),
            opened_at: opened,
            closed_at: (kind == MessageKind::Resolved)
                .then(|| opened + chrono::Duration::milliseconds(242)),
            sent_at: opened + chrono::Duration::seconds(30),
        }
    }

    #[test]
    fn the_webhook_body_carries_every_documented_field() {
        let body = body(ReceiverKind::Webhook, &view(MessageKind::Resolved));
        assert_eq!(
            body,
            json!({
                "version": 1,
                "idempotency_key": "k-1",
                "message": "resolved",
                "reminder": 0,
                "status": "resolved",
                "device_id": "room-3f-east",
                "alert_key": "offline",
                "episode": 2,
                "severity": "critical",
                "summary": "*bold* <b>not markup</b>",
                "since": "2026-12-03T21:05:00.000000Z",
                "closed_at": "2026-12-03T21:05:00.242000Z",
                "duration_ms": 242,
                "sent_at": "2026-12-03T21:05:30.000000Z",
            })
        );
    }

    #[test]
    fn a_feishu_card_is_coloured_by_severity_and_green_when_resolved() {
        let firing = body(ReceiverKind::Feishu, &view(MessageKind::Firing));
        assert_eq!(firing["msg_type"], "interactive");
        assert_eq!(firing["card"]["header"]["template"], "red");
        assert_eq!(
            firing["card"]["header"]["title"]["content"],
            "[FIRING] room-3f-east · offline"
        );
        let text = firing.to_string();
        assert!(text.contains("Device: room-3f-east"));
        assert!(text.contains("idempotency key k-1"));
        let resolved = body(ReceiverKind::Feishu, &view(MessageKind::Resolved));
        assert_eq!(resolved["card"]["header"]["template"], "green");
        assert!(resolved.to_string().contains("Lasted: 0.242 s"));
    }

    /// A sender's values as the breaker sent them: a mention and a link in the device
    /// id, mentions in the summary.
    fn hostile(kind: MessageKind) -> MessageView {
        let mut view = view(kind);
        view.device_id = "slk-<!channel> <https://evil.example|click>".into();
        view.alert_key = "a&b".into();
        view.severity = Some("<!everyone>".into());
        view.summary = Some("<!here> <@U123>".into());
        view
    }

    #[test]
    fn slack_text_escapes_mentions_and_links() {
        let body = body(ReceiverKind::Slack, &hostile(MessageKind::Resolved));
        assert_eq!(
            body,
            json!({
                "text": "[RESOLVED] slk-&lt;!channel&gt; &lt;https://evil.example|click&gt; · a&amp;b",
                "attachments": [{
                    "color": "#2eb67d",
                    "text": "&lt;!here&gt; &lt;@U123&gt;",
                    "fields": [
                        {"title": "Device", "value": "slk-&lt;!channel&gt; &lt;https://evil.example|click&gt;", "short": true},
                        {"title": "Alert", "value": "a&amp;b", "short": true},
                        {"title": "Severity", "value": "&lt;!everyone&gt;", "short": true},
                        {"title": "Since", "value": "2026-12-03T21:05:00.000000Z", "short": true},
                        {"title": "Lasted", "value": "0.242 s", "short": true},
                    ],
                    "footer": "alert-ledger · episode 2 · idempotency key k-1",
                }],
            })
        );
    }

    /// Feishu shows `plain_text` literally (only `lark_md` reads `<at>` and links), so
    /// the card carries the values unchanged and nothing is `lark_md`.
    #[test]
    fn a_feishu_card_carries_sender_values_as_plain_text_only() {
        let body = body(ReceiverKind::Feishu, &hostile(MessageKind::Firing));
        assert_eq!(
            body,
            json!({
                "msg_type": "interactive",
                "card": {
                    "config": {"wide_screen_mode": true},
                    "header": {"template": "grey", "title": {"tag": "plain_text",
                        "content": "[FIRING] slk-<!channel> <https://evil.example|click> · a&b"}},
                    "elements": [
                        {"tag": "div", "fields": [
                            {"is_short": true, "text": {"tag": "plain_text", "content": "Device: slk-<!channel> <https://evil.example|click>"}},
                            {"is_short": true, "text": {"tag": "plain_text", "content": "Alert: a&b"}},
                            {"is_short": true, "text": {"tag": "plain_text", "content": "Severity: <!everyone>"}},
                            {"is_short": true, "text": {"tag": "plain_text", "content": "Since: 2026-12-03T21:05:00.000000Z"}},
                        ]},
                        {"tag": "div", "text": {"tag": "plain_text", "content": "<!here> <@U123>"}},
                        {"tag": "note", "elements": [{"tag": "plain_text",
                            "content": "alert-ledger · episode 2 · idempotency key k-1"}]},
                    ],
                },
            })
        );
    }

    #[test]
    fn a_slack_message_has_text_colour_and_the_key_in_its_footer() {
        let mut reminder = view(MessageKind::Reminder);
        reminder.reminder = 3;
        let body = body(ReceiverKind::Slack, &reminder);
        assert_eq!(
            body["text"],
            "[STILL FIRING (reminder 3)] room-3f-east · offline"
        );
        assert_eq!(body["attachments"][0]["color"], "#d40e0d");
        assert_eq!(
            body["attachments"][0]["footer"],
            "alert-ledger · episode 2 · idempotency key k-1"
        );
    }
}
