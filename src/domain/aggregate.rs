//! The device aggregate: one event stream per device, `aggregate_id` = device id.
//!
//! Its in-memory state is deliberately tiny (the stream version). Everything a decision
//! needs beyond that — which event ids a stream already holds — is an indexed lookup,
//! so recording an event costs the same on a fresh device and on one that has flapped
//! for years, and the aggregate's memory does not grow with its stream.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::commands::DeviceCommand;
use super::events::{DeviceEvent, Kind};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Device {
    /// Number of events in the stream, which is also the last stream version.
    pub stream_version: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    #[error("a command must record at least one event")]
    NothingToRecord,
    #[error("event {0} appears twice in one command")]
    RepeatedEventId(String),
    #[error("event {0} is for device {1}, not this stream")]
    WrongDevice(String, String),
    #[error("event {0} is an alarm and cannot resolve another event")]
    AlarmWithResolves(String),
}

/// The clock is a service so that aggregate tests can pin `recorded_at`.
pub struct DeviceServices {
    clock: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl DeviceServices {
    /// The system clock at microsecond precision, the finest both engines store.
    pub fn system_clock() -> Self {
        Self {
            clock: Box::new(|| Utc::now().trunc_subsecs(6)),
        }
    }

    pub fn fixed_clock(at: DateTime<Utc>) -> Self {
        Self {
            clock: Box::new(move || at),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

impl Aggregate for Device {
    const TYPE: &'static str = "device";
    type Command = (String, DeviceCommand);
    type Event = DeviceEvent;
    type Error = DeviceError;
    type Services = DeviceServices;

    async fn handle(
        &mut self,
        (device_id, command): Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            DeviceCommand::Record(events) => {
                if events.is_empty() {
                    return Err(DeviceError::NothingToRecord);
                }
                let mut seen = HashSet::new();
                for event in &events {
                    if !seen.insert(event.event_id.as_str()) {
                        return Err(DeviceError::RepeatedEventId(event.event_id.clone()));
                    }
                    if event.device_id != device_id {
                        return Err(DeviceError::WrongDevice(
                            event.event_id.clone(),
                            event.device_id.clone(),
                        ));
                    }
                    if event.kind == Kind::Alarm && event.resolves.is_some() {
                        return Err(DeviceError::AlarmWithResolves(event.event_id.clone()));
                    }
                }
                let recorded_at = services.now();
                for event in events {
                    sink.write(
                        DeviceEvent::Recorded(event.into_recorded(recorded_at)),
                        self,
                    )
                    .await;
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DeviceEvent::Recorded(_) => self.stream_version += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::commands::NewEvent;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 21, 5, 0).unwrap()
    }

    fn new_event(id: &str, kind: Kind) -> NewEvent {
        NewEvent {
            event_id: id.to_string(),
            device_id: "room-1".to_string(),
            alert_key: "offline".to_string(),
            kind,
            occurred_at: None,
            severity: None,
            summary: None,
            labels: BTreeMap::new(),
            payload: None,
            source: None,
            resolves: None,
        }
    }

    fn framework() -> TestFramework<Device> {
        TestFramework::with(DeviceServices::fixed_clock(at()))
    }

    #[test]
    fn recording_an_alarm_stamps_it_with_the_server_clock() {
        let alarm = new_event("a1", Kind::Alarm);
        let expected = DeviceEvent::Recorded(alarm.clone().into_recorded(at()));
        framework()
            .given_no_previous_events()
            .when(("room-1".to_string(), DeviceCommand::Record(vec![alarm])))
            .then_expect_events(vec![expected]);
    }

    #[test]
    fn a_recovery_is_recorded_even_when_no_alarm_came_before_it() {
        let recovery = new_event("r1", Kind::Recovery);
        let expected = DeviceEvent::Recorded(recovery.clone().into_recorded(at()));
        framework()
            .given_no_previous_events()
            .when(("room-1".to_string(), DeviceCommand::Record(vec![recovery])))
            .then_expect_events(vec![expected]);
    }

    #[test]
    fn the_same_id_twice_in_one_command_is_refused() {
        let alarm = new_event("a1", Kind::Alarm);
        framework()
            .given_no_previous_events()
            .when((
                "room-1".to_string(),
                DeviceCommand::Record(vec![alarm.clone(), alarm]),
            ))
            .then_expect_error(DeviceError::RepeatedEventId("a1".to_string()));
    }

    #[test]
    fn an_alarm_cannot_resolve_anything() {
        let mut alarm = new_event("a1", Kind::Alarm);
        alarm.resolves = Some("a0".to_string());
        framework()
            .given_no_previous_events()
            .when(("room-1".to_string(), DeviceCommand::Record(vec![alarm])))
            .then_expect_error(DeviceError::AlarmWithResolves("a1".to_string()));
    }

    #[test]
    fn an_event_for_another_device_is_refused() {
        let mut alarm = new_event("a1", Kind::Alarm);
        alarm.device_id = "room-2".to_string();
        framework()
            .given_no_previous_events()
            .when(("room-1".to_string(), DeviceCommand::Record(vec![alarm])))
            .then_expect_error(DeviceError::WrongDevice(
                "a1".to_string(),
                "room-2".to_string(),
            ));
    }

    #[test]
    fn an_empty_command_is_refused() {
        framework()
            .given(vec![])
            .when(("room-1".to_string(), DeviceCommand::Record(vec![])))
            .then_expect_error(DeviceError::NothingToRecord);
    }
}
