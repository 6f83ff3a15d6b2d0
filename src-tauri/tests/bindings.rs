//! The UI's TypeScript types are generated from the Rust types (ts-rs), never
//! written by hand. This test regenerates them into a scratch folder and fails if
//! `src-ui/src/api/gen/` differs; `SAM_UPDATE_BINDINGS=1` writes them there instead.

use std::path::{Path, PathBuf};

use ts_rs::{Config, TS};

fn export(dir: &Path) {
    let cfg = Config::new().with_out_dir(dir);
    macro_rules! all {
        ($($t:ty),* $(,)?) => { $( <$t>::export_all(&cfg).expect(stringify!($t)); )* };
    }
    all!(
        sam_protocol::Workspace,
        sam_protocol::AgentSession,
        sam_protocol::Event,
        sam_protocol::EventPage,
        sam_protocol::NodeInfo,
        sam_protocol::NodeStopPlan,
        sam_protocol::Terminal,
        sam_protocol::Port,
        sam_protocol::FileEntry,
        sam_protocol::DirListing,
        sam_protocol::CreateWorkspace,
        sam_protocol::CreateSession,
        sam_protocol::SessionFrame,
        sam_protocol::SessionClientFrame,
        sam_protocol::HistoryPage,
        sam_protocol::TerminalServerFrame,
        sam_protocol::ErrorBody,
        sam_desktop::nodes::Node,
        sam_desktop::nodes::stream::HealthChange,
        sam_desktop::api::workspaces::WorkspaceView,
        sam_desktop::Error,
        sam_desktop::api::settings::Settings,
        sam_desktop::api::Deleted,
        sam_desktop::api::UiSignal,
        sam_desktop::api::agents::AgentReadiness,
        sam_desktop::providers::hetzner::HetznerOptions,
    );
}

fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = walk(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "ts") {
                v.push(p);
            }
        }
    }
    v
}

#[test]
fn typescript_bindings_are_up_to_date() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-ui/src/api/gen");
    if std::env::var_os("SAM_UPDATE_BINDINGS").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        export(&committed);
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    export(scratch.path());
    let fresh = files(scratch.path());
    assert!(!fresh.is_empty());
    assert_eq!(
        files(&committed),
        fresh,
        "src-ui/src/api/gen is out of date: run `SAM_UPDATE_BINDINGS=1 cargo test -p sam-desktop --test bindings`"
    );
}
