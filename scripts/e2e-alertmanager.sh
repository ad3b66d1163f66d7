#!/usr/bin/env bash
# End-to-end test with the real programs: Prometheus scrapes a small HTTP target, fires
# `up == 0` when it is down, Alertmanager sends the webhook to alert-ledger with a bearer
# token, and the ledger's API must show each outage as one episode.
#
#   scripts/e2e-alertmanager.sh            # skipped (exit 0) if the programs are missing
#   CI=true scripts/e2e-alertmanager.sh    # installs Debian's packages when missing
#
# Everything runs on loopback ports picked free at start, with data in a temp dir; every
# process started here is stopped by its PID on exit. Environment: E2E_FLAPS (outages
# after the first, default 3), E2E_TIMEOUT (seconds per wait, default 60),
# ALERT_LEDGER_BIN (a built binary; default: `cargo build` and target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."

FLAPS="${E2E_FLAPS:-3}"
TIMEOUT="${E2E_TIMEOUT:-60}"

say() { echo "e2e: $*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

alertmanager_bin() {
    command -v prometheus-alertmanager || command -v alertmanager || true
}

if ! command -v prometheus >/dev/null 2>&1 || [ -z "$(alertmanager_bin)" ]; then
    if [ "${CI:-}" = "true" ]; then
        say "installing Debian's prometheus and prometheus-alertmanager"
        as_root apt-get update -qq
        # The packages' own services are not wanted: the test runs its own instances on
        # its own ports. RUNLEVEL=1 keeps invoke-rc.d from starting them where no
        # policy-rc.d does.
        as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq \
            prometheus prometheus-alertmanager >/dev/null
    else
        echo "SKIPPED: e2e-alertmanager: prometheus and alertmanager are not installed" \
            "(apt-get install prometheus prometheus-alertmanager, or run with CI=true)"
        exit 0
    fi
fi
for program in python3 curl; do
    command -v "$program" >/dev/null 2>&1 || { say "$program is required" >&2; exit 1; }
done
ALERTMANAGER="$(alertmanager_bin)"

if [ -z "${ALERT_LEDGER_BIN:-}" ]; then
    cargo build --quiet --bin alert-ledger
    ALERT_LEDGER_BIN="${CARGO_TARGET_DIR:-target}/debug/alert-ledger"
fi

WORK="$(mktemp -d -t alert-ledger-e2e.XXXXXX)"
PIDS=()
TARGET_PID=""
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}" $TARGET_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}" $TARGET_PID; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -f "$log" ] || continue
            echo "----- last lines of $(basename "$log")"
            tail -n 25 "$log"
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
LEDGER_PORT="$(free_port)"
TARGET_PORT="$(free_port)"
PROM_PORT="$(free_port)"
AM_PORT="$(free_port)"
LEDGER="http://127.0.0.1:$LEDGER_PORT"
DEVICE="127.0.0.1:$TARGET_PORT"

token() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
export E2E_INGEST_TOKEN E2E_READ_TOKEN
E2E_INGEST_TOKEN="$(token)"
E2E_READ_TOKEN="$(token)"
umask 077
cat >"$WORK/tokens.toml" <<EOF
[[tokens]]
name = "alertmanager"
token_env = "E2E_INGEST_TOKEN"
scopes = ["ingest"]

[[tokens]]
name = "e2e-reader"
token_env = "E2E_READ_TOKEN"
scopes = ["read"]
EOF
printf '%s' "$E2E_INGEST_TOKEN" >"$WORK/alertmanager-token"

# The target: a static metrics file served by python's http.server.
mkdir -p "$WORK/www"
printf '# TYPE e2e_target_info gauge\ne2e_target_info 1\n' >"$WORK/www/metrics.txt"
start_target() {
    python3 -m http.server "$TARGET_PORT" --bind 127.0.0.1 --directory "$WORK/www" \
        >>"$WORK/target.log" 2>&1 &
    TARGET_PID=$!
}
stop_target() {
    kill "$TARGET_PID"
    wait "$TARGET_PID" 2>/dev/null || true
    TARGET_PID=""
}

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
  evaluation_interval: 1s
rule_files: ["$WORK/rules.yml"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
scrape_configs:
  - job_name: e2e-target
    metrics_path: /metrics.txt
    static_configs:
      - targets: ["$DEVICE"]
EOF
cat >"$WORK/rules.yml" <<'EOF'
groups:
  - name: e2e
    rules:
      - alert: TargetDown
        expr: up{job="e2e-target"} == 0
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} does not answer scrapes"
EOF
cat >"$WORK/alertmanager.yml" <<EOF
route:
  receiver: alert-ledger
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 5s
receivers:
  - name: alert-ledger
    webhook_configs:
      - url: "$LEDGER/v1/integrations/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: "$WORK/alertmanager-token"
EOF

say "alert-ledger on $LEDGER, target on $DEVICE, Prometheus on :$PROM_PORT, Alertmanager on :$AM_PORT"
RUST_LOG=info "$ALERT_LEDGER_BIN" serve --listen "127.0.0.1:$LEDGER_PORT" \
    --database-url "sqlite://$WORK/ledger.db" --auth-config "$WORK/tokens.toml" \
    >"$WORK/alert-ledger.log" 2>&1 &
PIDS+=($!)
start_target
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
"$ALERTMANAGER" --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/alertmanager" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
    >"$WORK/alertmanager.log" 2>&1 &
PIDS+=($!)

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.5 s for up to $TIMEOUT s.
wait_for() {
    local what="$1"
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "timed out after ${TIMEOUT}s waiting for: $what" >&2
            return 1
        fi
        sleep 0.5
    done
    say "$what (${SECONDS}s)"
}

get() { curl -sf -H "Authorization: Bearer $E2E_READ_TOKEN" "$LEDGER$1"; }
DEVICE_PATH="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$DEVICE")"

# alert_is STATUS EPISODES: the target's one alert has this status and episode count.
alert_is() {
    get "/v1/devices/$DEVICE_PATH/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)["alerts"]
ok = len(alerts) == 1 and alerts[0]["status"] == sys.argv[1] and alerts[0]["episode_count"] == int(sys.argv[2])
sys.exit(0 if ok else 1)' "$1" "$2"
}
target_up_in_prometheus() {
    curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up%7Bjob%3D%22e2e-target%22%7D" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and r[0]["value"][1]=="1" else 1)'
}

wait_for "alert-ledger ready" curl -sf "$LEDGER/readyz"
wait_for "Prometheus ready" curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
wait_for "Alertmanager ready" curl -sf "http://127.0.0.1:$AM_PORT/-/ready"
wait_for "Prometheus sees the target up" target_up_in_prometheus

# The token is enforced: no token is a 401, the read-only token cannot ingest.
status="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$LEDGER/v1/integrations/alertmanager")"
[ "$status" = 401 ] || { say "expected 401 without a token, got $status" >&2; exit 1; }
status="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $E2E_READ_TOKEN" \
    "$LEDGER/v1/integrations/alertmanager")"
[ "$status" = 403 ] || { say "expected 403 for the read token, got $status" >&2; exit 1; }
say "no token: 401; read-only token posting: 403"

duplicates() {
    curl -sf "$LEDGER/metrics" | awk '/^alert_ledger_events_total\{outcome="duplicate"\}/ {print $2}'
}
duplicates_seen() { [ "$(duplicates)" -gt 0 ]; }

outages=$((FLAPS + 1))
for episode in $(seq 1 "$outages"); do
    stop_target
    wait_for "outage $episode: target stopped, alarm recorded, alert firing" alert_is firing "$episode"
    if [ "$episode" -eq 1 ]; then
        # Held down past repeat_interval (5 s): Alertmanager sends the firing alert again.
        wait_for "outage 1: Alertmanager re-sent the alert, answered as a duplicate" duplicates_seen
    fi
    start_target
    wait_for "outage $episode: target started, recovery recorded, alert resolved" alert_is resolved "$episode"
done

# Re-sends (repeat_interval, Prometheus' resend of resolved alerts) must all have been
# duplicates: exactly one alarm and one recovery per outage in the log.
KEY="$(get "/v1/devices/$DEVICE_PATH/alerts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alerts"][0]["alert_key"])')"
KEY_PATH="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$KEY")"
get "/v1/devices/$DEVICE_PATH/alerts/$KEY_PATH/events?limit=1000" >"$WORK/trail.json"
python3 - "$WORK/trail.json" "$outages" "$DEVICE" <<'EOF'
import json, sys
trail = json.load(open(sys.argv[1]))
outages = int(sys.argv[2])
events = trail["events"]
alarms = [e for e in events if e["kind"] == "alarm"]
recoveries = [e for e in events if e["kind"] == "recovery"]
episodes = trail["episodes"]
alert = trail["alert"]
print(f"\naudit trail of device {sys.argv[3]}, alert {alert['alert_key']}:")
print(f"{'ver':>3}  {'kind':8}  {'occurred_at':27}  {'recorded_at':27}  event_id")
for e in events:
    print(f"{e['stream_version']:>3}  {e['kind']:8}  {e['occurred_at']:27}  {e['recorded_at']:27}  {e['event_id']}")
print("\nepisodes:")
for ep in episodes:
    print(f"  #{ep['number']}: {ep['opened_at']} -> {ep['closed_at']}  ({ep['duration_ms']} ms, {ep['alarm_count']} alarm)")
print(f"\nalert: status {alert['status']}, {alert['episode_count']} episodes, "
      f"{alert['alarm_count']} alarms, {alert['recovery_count']} recoveries, "
      f"{alert['stray_recovery_count']} stray recoveries")
problems = []
if len(alarms) != outages or len(recoveries) != outages:
    problems.append(f"expected {outages} alarms and {outages} recoveries, got {len(alarms)} and {len(recoveries)}")
if len(episodes) != outages or any(ep["closed_at"] is None or ep["alarm_count"] != 1 for ep in episodes):
    problems.append(f"expected {outages} closed episodes of one alarm each")
if alert["status"] != "resolved":
    problems.append("the alert is not resolved")
if any(e["source"] != "alertmanager" or e["device_id"] != sys.argv[3] for e in events):
    problems.append("an event has the wrong source or device")
for problem in problems:
    print("e2e: FAILED:", problem, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
say "Alertmanager re-sends answered as duplicates: $(duplicates)"
if grep -qF "$E2E_INGEST_TOKEN" "$WORK/alert-ledger.log" || grep -qF "$E2E_READ_TOKEN" "$WORK/alert-ledger.log"; then
    say "FAILED: a token appears in alert-ledger's log" >&2
    exit 1
fi
say "passed: $outages outages, $outages episodes, in ${SECONDS}s"
