//! Whether a device is connected, from the broker's connect and disconnect events.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    pub online: bool,
    /// When the broker saw the change (its clock, not ours).
    pub since: Millis,
    /// Why the device went offline, as the broker tells (`CLIENT_INITIATED_DISCONNECT`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Presence {
    /// Whether `self` is newer than `other`: presence events can arrive out of order, and a
    /// late "connected" must not undo a later "disconnected".
    pub fn supersedes(&self, other: &Presence) -> bool {
        self.since > other.since || (self.since == other.since && !self.online && other.online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(online: bool, since: Millis) -> Presence {
        Presence {
            online,
            since,
            reason: None,
        }
    }

    #[test]
    fn a_later_event_wins_and_a_tie_goes_offline() {
        assert!(at(false, 20).supersedes(&at(true, 10)));
        assert!(!at(true, 10).supersedes(&at(false, 20)));
        assert!(at(false, 10).supersedes(&at(true, 10)));
        assert!(!at(true, 10).supersedes(&at(false, 10)));
    }
}
