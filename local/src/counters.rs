//! What only one machine counts (the core's counters are in `iot_core::counters`): the
//! embedded broker's and the HTTP door's traffic, and shadow reports.

pub const MQTT_MESSAGES_RECEIVED: &str = "mqtt_messages_received_total";
pub const HTTP_MESSAGES_RECEIVED: &str = "http_messages_received_total";
pub const MQTT_CONNECTS_REFUSED: &str = "mqtt_connects_refused_total";
pub const MQTT_PUBLISHES_REFUSED: &str = "mqtt_publishes_refused_total";
pub const MQTT_FORWARD_DROPPED: &str = "mqtt_forward_dropped_total";
pub const SHADOW_UPDATES: &str = "shadow_updates_total";
pub const SHADOW_UPDATES_REJECTED: &str = "shadow_updates_rejected_total";

/// Every name above.
pub const ALL: &[&str] = &[
    MQTT_MESSAGES_RECEIVED,
    HTTP_MESSAGES_RECEIVED,
    MQTT_CONNECTS_REFUSED,
    MQTT_PUBLISHES_REFUSED,
    MQTT_FORWARD_DROPPED,
    SHADOW_UPDATES,
    SHADOW_UPDATES_REJECTED,
];
