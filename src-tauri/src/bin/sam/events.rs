//! `sam events [NODE | WS] [--follow]`

use clap::Args;
use futures::StreamExt;
use sam_desktop::Sam;
use sam_desktop::agent_client::Scope;
use sam_protocol::{Event, NodeStreamFrame};
use tokio_tungstenite::tungstenite::Message;

use crate::Outcome;
use crate::output::{Out, word};

#[derive(Args)]
pub struct EventsArgs {
    /// A node or a workspace (NODE/NAME, id, or NAME); all nodes without it.
    pub target: Option<String>,
    /// Keep printing new events until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// How many past events to print first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

fn print(out: &Out, node_name: &str, e: &Event) {
    if out.json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!(
            "{}  {:<5} {:<8} {:<28} {}",
            e.created_at.format("%Y-%m-%d %H:%M:%S"),
            word(&e.level),
            node_name,
            e.kind.as_str(),
            e.message
        );
    }
}

pub async fn run(sam: &Sam, out: &Out, args: EventsArgs) -> Result<Outcome, sam_desktop::Error> {
    // What to read: (node, optional workspace id).
    let targets = match &args.target {
        None => sam
            .store()
            .nodes()
            .await?
            .into_iter()
            .map(|n| (n, None))
            .collect::<Vec<_>>(),
        Some(t) => match sam.node_record(t).await {
            Ok(n) => vec![(n, None)],
            Err(_) => {
                let l = sam.locate(t).await?;
                vec![(l.node, Some(l.workspace.id))]
            }
        },
    };
    let mut followers = Vec::new();
    for (node, ws) in targets {
        let client = sam.client(&node).await?;
        // The desktop's own events about the node (health, provisioning), and the agent's.
        let mut events: Vec<Event> = if ws.is_none() {
            sam.store()
                .events(Some(&node.id), None, args.limit as i64)
                .await?
                .into_iter()
                .filter(|e| e.id.starts_with("desktop-"))
                .collect()
        } else {
            Vec::new()
        };
        let page = client
            .events(ws.as_deref(), args.limit.clamp(1, 500), None)
            .await;
        let last_id = match page {
            Ok(p) => {
                let last = p.events.first().map(|e| e.id.clone());
                events.extend(p.events.into_iter().rev());
                last
            }
            Err(e) if args.target.is_some() => return Err(e),
            Err(e) => {
                eprintln!("warning: node {} did not answer: {}", node.name, e.message);
                None
            }
        };
        events.sort_by_key(|e| e.created_at);
        for e in &events {
            print(out, &node.name, e);
        }
        if args.follow {
            followers.push((node, ws, client, last_id));
        }
    }
    if followers.is_empty() {
        return Ok(Outcome::Done);
    }
    let tasks = followers
        .into_iter()
        .map(|(node, ws, client, since)| async move {
            let path = match &since {
                Some(id) => format!("/events/ws?since={id}"),
                None => "/events/ws".to_string(),
            };
            let mut socket = client.websocket(&path, Scope::Node).await?;
            while let Some(Ok(msg)) = socket.next().await {
                if let Message::Text(t) = msg
                    && let Ok(NodeStreamFrame::Event { event }) = serde_json::from_str(&t)
                    && (ws.is_none() || event.workspace_id == ws)
                {
                    print(out, &node.name, &event);
                }
            }
            Err::<(), _>(sam_desktop::Error::new(
                "node_unreachable",
                format!("The event stream of {} ended.", node.name),
            ))
        });
    futures::future::try_join_all(tasks).await?;
    Ok(Outcome::Done)
}
