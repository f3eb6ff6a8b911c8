//! The `SR_StateNames` rows for the topic types software updates use (flow.md §5).

/// One row of `SR_StateNames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateName {
    pub topic_type: u32,
    pub state_id: u32,
    pub name: &'static str,
}

/// Topic type 500: update detection (compliance); the topic ID is the update GUID.
pub const TOPIC_UPDATE_DETECTION: u32 = 500;
/// Topic type 501: update source scan; the topic ID is the UpdateSource GUID.
pub const TOPIC_SCAN: u32 = 501;
/// Topic type 402: update enforcement; the topic ID is the update GUID.
pub const TOPIC_UPDATE_ENFORCEMENT: u32 = 402;
/// Topic type 300: deployment compliance; the topic ID is the deployment GUID.
pub const TOPIC_DEPLOYMENT_COMPLIANCE: u32 = 300;
/// Topic type 301: deployment enforcement.
pub const TOPIC_DEPLOYMENT_ENFORCEMENT: u32 = 301;
/// Topic type 302: deployment evaluation.
pub const TOPIC_DEPLOYMENT_EVALUATION: u32 = 302;

/// State IDs of topic type 500.
pub mod detection {
    pub const UNKNOWN: u32 = 0;
    pub const NOT_REQUIRED: u32 = 1;
    pub const REQUIRED: u32 = 2;
    pub const INSTALLED: u32 = 3;
}

/// State IDs of topic type 501.
pub mod scan {
    pub const UNKNOWN: u32 = 0;
    pub const WAITING_FOR_LOCATION: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const COMPLETED: u32 = 3;
    pub const PENDING_RETRY: u32 = 4;
    pub const FAILED: u32 = 5;
    pub const COMPLETED_WITH_ERRORS: u32 = 6;
}

const fn names(topic_type: u32, names: &'static [&'static str]) -> (u32, &'static [&'static str]) {
    (topic_type, names)
}

/// Per topic type, the state names in state-ID order (IDs are dense from 0).
const TABLE: [(u32, &[&str]); 6] = [
    names(300, &["Compliance state unknown", "Compliant", "Non-compliant", "Conflict detected"]),
    names(
        301,
        &[
            "Enforcement state unknown",
            "Installing update(s)",
            "Waiting for restart",
            "Waiting for another installation to complete",
            "Successfully installed update(s)",
            "Pending system restart",
            "Failed to install update(s)",
            "Downloading update(s)",
            "Downloaded update(s)",
            "Failed to download update(s)",
            "Waiting for maintenance window before installing",
            "Waiting for orchestration",
            "Waiting for superseding update",
        ],
    ),
    names(
        302,
        &["Evaluation state unknown", "Evaluation activated", "Evaluation succeeded", "Evaluation failed"],
    ),
    names(
        402,
        &[
            "Enforcement state unknown",
            "Enforcement started",
            "Enforcement waiting for content",
            "Waiting for another installation to complete",
            "Waiting for maintenance window before installing",
            "Restart required before installing",
            "General failure",
            "Pending installation",
            "Installing update",
            "Pending system restart",
            "Successfully installed update",
            "Failed to install update",
            "Downloading update",
            "Downloaded update",
            "Failed to download update",
        ],
    ),
    names(
        500,
        &["Detection state unknown", "Update is not required", "Update is required", "Update is installed"],
    ),
    names(
        501,
        &[
            "Scan state unknown",
            "Scan is waiting for catalog location",
            "Scan is running",
            "Scan completed",
            "Scan is pending retry",
            "Scan failed",
            "Scan completed with errors",
        ],
    ),
];

fn states(topic_type: u32) -> Option<&'static [&'static str]> {
    TABLE.iter().find(|(t, _)| *t == topic_type).map(|(_, s)| *s)
}

/// Whether `topic_type` is one of the software-update topic types in the table.
pub fn is_known_topic_type(topic_type: u32) -> bool {
    states(topic_type).is_some()
}

/// The highest state ID of `topic_type`, if the type is known.
pub fn max_state(topic_type: u32) -> Option<u32> {
    states(topic_type).map(|s| s.len() as u32 - 1)
}

/// The name of a state, if the topic type and state ID are in the table.
pub fn state_name(topic_type: u32, state_id: u32) -> Option<&'static str> {
    states(topic_type)?.get(state_id as usize).copied()
}

/// Every row, ordered by topic type then state ID.
pub fn all() -> impl Iterator<Item = StateName> {
    TABLE.iter().flat_map(|(topic_type, names)| {
        names.iter().enumerate().map(move |(i, name)| StateName {
            topic_type: *topic_type,
            state_id: i as u32,
            name,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_flow_md() {
        assert_eq!(max_state(500), Some(3));
        assert_eq!(max_state(501), Some(6));
        assert_eq!(max_state(402), Some(14));
        assert_eq!(max_state(300), Some(3));
        assert_eq!(max_state(301), Some(12));
        assert_eq!(max_state(302), Some(3));
        assert_eq!(max_state(600), None);
        assert_eq!(all().count(), 4 + 7 + 15 + 4 + 13 + 4);
    }

    #[test]
    fn every_pair_is_answered_consistently() {
        for topic_type in 0..1000 {
            for state in 0..20 {
                let name = state_name(topic_type, state);
                let in_range = max_state(topic_type).is_some_and(|m| state <= m);
                assert_eq!(name.is_some(), in_range, "{topic_type} {state}");
            }
        }
        assert_eq!(state_name(500, 2), Some("Update is required"));
        assert_eq!(state_name(501, 2), Some("Scan is running"));
        assert_eq!(state_name(500, 9), None);
        let rows: Vec<_> = all().collect();
        assert!(rows.windows(2).all(|w| (w[0].topic_type, w[0].state_id) < (w[1].topic_type, w[1].state_id)));
    }
}
