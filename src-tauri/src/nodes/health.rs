//! Health from heartbeats (DESIGN.md "Health"): `healthy` while they arrive,
//! `stale` after `NODE_HEARTBEAT_STALE_SECONDS` without one, `unhealthy` after three
//! times that or when the agent answers errors. Pure, so it is tested on its own.

use std::time::Duration;

use super::Health;

/// Health given the time since the last heartbeat (`None`: never seen) and
/// whether the last contact failed.
pub fn judge(since_last: Option<Duration>, stale_after: Duration, failing: bool) -> Health {
    match since_last {
        None => Health::Unhealthy,
        Some(d) if d >= stale_after * 3 => Health::Unhealthy,
        Some(_) if failing => Health::Unhealthy,
        Some(d) if d >= stale_after => Health::Stale,
        Some(_) => Health::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let s = Duration::from_secs(30);
        assert_eq!(
            judge(Some(Duration::from_secs(5)), s, false),
            Health::Healthy
        );
        assert_eq!(
            judge(Some(Duration::from_secs(30)), s, false),
            Health::Stale
        );
        assert_eq!(
            judge(Some(Duration::from_secs(89)), s, false),
            Health::Stale
        );
        assert_eq!(
            judge(Some(Duration::from_secs(90)), s, false),
            Health::Unhealthy
        );
        assert_eq!(
            judge(Some(Duration::from_secs(1)), s, true),
            Health::Unhealthy
        );
        assert_eq!(judge(None, s, false), Health::Unhealthy);
    }
}
