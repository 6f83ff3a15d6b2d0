//! What deserves a desktop notification, decided here (not by the notification
//! daemon, which may be absent): every health transition of a node that is not
//! stopped on purpose, an agent session waiting for its person, and an agent
//! upgrade that failed (the app tries those on its own, unseen).

use sam_protocol::EventType;

use crate::nodes::Health;
use crate::nodes::stream::NodeSignal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

pub fn decide(signal: &NodeSignal) -> Option<Notice> {
    match signal {
        NodeSignal::Health(change) => {
            // The first judgement of a node (no `from`) that finds it healthy is
            // not news.
            if change.from.is_none() && change.to == Health::Healthy {
                return None;
            }
            let (title, body) = match change.to {
                Health::Healthy => (
                    "Node back",
                    format!("{} is healthy again.", change.node_name),
                ),
                Health::Stale => (
                    "Node quiet",
                    format!("{} has not sent a heartbeat lately.", change.node_name),
                ),
                Health::Unhealthy => (
                    "Node unhealthy",
                    format!("{} is unreachable or failing.", change.node_name),
                ),
            };
            Some(Notice {
                title: title.into(),
                body,
            })
        }
        NodeSignal::Event(event) if event.kind == EventType::SessionPermissionRequested => {
            Some(Notice {
                title: "An agent is waiting for you".into(),
                body: format!("Permission asked: {}", event.message),
            })
        }
        NodeSignal::Event(event) if event.kind.as_str() == "node.upgrade_failed" => Some(Notice {
            title: "Agent upgrade failed".into(),
            body: event.message.clone(),
        }),
        NodeSignal::Event(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::stream::HealthChange;

    fn change(from: Option<Health>, to: Health) -> NodeSignal {
        NodeSignal::Health(HealthChange {
            node_id: "n".into(),
            node_name: "box".into(),
            from,
            to,
            at: crate::now(),
        })
    }

    #[test]
    fn health_transitions_notify_except_a_first_healthy() {
        assert_eq!(decide(&change(None, Health::Healthy)), None);
        assert_eq!(
            decide(&change(Some(Health::Healthy), Health::Stale))
                .unwrap()
                .title,
            "Node quiet"
        );
        assert_eq!(
            decide(&change(Some(Health::Stale), Health::Unhealthy))
                .unwrap()
                .title,
            "Node unhealthy"
        );
        assert!(
            decide(&change(Some(Health::Unhealthy), Health::Healthy))
                .unwrap()
                .body
                .contains("box")
        );
        assert!(decide(&change(None, Health::Unhealthy)).is_some());
    }

    #[test]
    fn permission_requests_and_failed_upgrades_notify_other_events_do_not() {
        let event = |kind: EventType| {
            NodeSignal::Event(Box::new(sam_protocol::Event {
                id: "1".into(),
                kind,
                level: sam_protocol::EventLevel::Warn,
                node_id: "n".into(),
                workspace_id: Some("w".into()),
                session_id: Some("s".into()),
                message: "Run rm -rf build".into(),
                detail: None,
                created_at: crate::now(),
            }))
        };
        let n = decide(&event(EventType::SessionPermissionRequested)).unwrap();
        assert!(n.body.contains("Run rm -rf build"));
        assert_eq!(decide(&event(EventType::WorkspaceRunning)), None);
        let failed = decide(&event(EventType::Other("node.upgrade_failed".into()))).unwrap();
        assert_eq!(failed.title, "Agent upgrade failed");
        assert!(failed.body.contains("Run rm -rf build"));
        assert_eq!(
            decide(&event(EventType::Other("node.upgraded".into()))),
            None
        );
    }
}
