//! Files and ports through the control-plane library (what the app's file tree,
//! editor and ports list call).

mod common;

use common::*;
use sam_desktop::Sam;
use sam_desktop::api::Quiet;
use sam_desktop::api::workspaces::NewWorkspace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_list_read_and_ports() {
    let d = Desktop::new();
    unsafe {
        std::env::set_var("SAM_LOCAL_AGENT_PORT", d.port.to_string());
        std::env::set_var("SAM_AGENT_BINARY", agent_binary());
        std::env::set_var("SAM_SECRET_STORE", "file");
    }
    std::fs::create_dir_all(d.state()).unwrap();
    let sam = Sam::open_at(&d.state()).await.unwrap();
    sam.set_setting("default-image", &test_image())
        .await
        .unwrap();
    let node = sam.add_local("here", &Quiet).await.unwrap();
    let ws = sam
        .create_workspace(
            "here",
            NewWorkspace {
                name: "files".into(),
                ..Default::default()
            },
            true,
            &Quiet,
        )
        .await
        .unwrap();
    let spec = format!("here/{}", ws.workspace.display_name);

    let body = bytes::Bytes::from_static(b"fn main() {}\n\x00\xff");
    sam.write_file(&spec, "src/main.rs", body.clone())
        .await
        .unwrap();
    let root = sam.list_folder(&spec, "").await.unwrap();
    assert_eq!(
        root.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["src"]
    );
    let src = sam.list_folder(&spec, "src").await.unwrap();
    assert_eq!(src[0].name, "main.rs");
    assert_eq!(src[0].size, body.len() as u64);
    assert_eq!(sam.read_file(&spec, "src/main.rs").await.unwrap(), body);
    let e = sam.read_file(&spec, "../etc/passwd").await.unwrap_err();
    assert_eq!(e.code, "forbidden", "{e:?}");
    let e = sam.list_folder(&spec, "src/main.rs").await.unwrap_err();
    assert_eq!(e.code, "invalid_input");
    assert!(sam.ports(&spec).await.unwrap().is_empty());
    cleanup_node(&node.id);
}
