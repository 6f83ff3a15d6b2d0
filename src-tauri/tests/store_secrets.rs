//! The store migrates from empty and never holds a secret; the secret stores work.

mod common;

use common::*;
use sam_desktop::Sam;

#[tokio::test]
async fn secrets_never_reach_the_database() {
    let d = Desktop::new();
    unsafe {
        std::env::set_var("SAM_SECRET_STORE", "file");
    }
    std::fs::create_dir_all(d.state()).unwrap();
    // From empty: the schema is made, and opening again is a no-op.
    let sam = Sam::open_at(&d.state()).await.unwrap();
    drop(sam);
    let sam = Sam::open_at(&d.state()).await.unwrap();
    let token = "hcloud-SECRET-token-4242";
    sam.secrets().set("hetzner-token", token).await.unwrap();
    sam.secrets()
        .set("agent-key:codex", "sk-SECRET-agent-key")
        .await
        .unwrap();
    sam.set_setting("theme", "dark").await.unwrap();
    assert_eq!(
        sam.secrets().get("hetzner-token").await.unwrap().as_deref(),
        Some(token)
    );
    let key_pem = std::fs::read_to_string(d.state().join("secrets.json")).unwrap();
    assert!(key_pem.contains("installation-key"));
    drop(sam);
    for entry in std::fs::read_dir(d.state()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // (-shm and -wal files may vanish as the last connection closes.)
        if name.starts_with("sam.db")
            && let Ok(bytes) = std::fs::read(&path)
        {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("SECRET"), "a secret reached {name}");
            assert!(
                !text.contains("PRIVATE KEY"),
                "a private key reached {name}"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.state().join("secrets.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// The kernel keyring works without a desktop session inside a session keyring
/// (`keyctl session -`), and says clearly when it cannot be reached.
#[test]
fn keyutils_store_inside_a_session_keyring() {
    let d = Desktop::new();
    let have_keyctl = std::process::Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        have_keyctl,
        "keyctl (apt keyutils) is needed; scripts/test installs it"
    );
    let sam = SAM;
    let script = format!(
        "printf 'tok-KEYUTILS-1' | {sam} settings hetzner-token && {sam} --json settings show"
    );
    let out = std::process::Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .env("SAM_DESKTOP_DIR", d.state())
        .env("SAM_SECRET_STORE", "keyutils")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("kernel keyring"), "{stdout}");
    assert!(stdout.contains("\"hetznerTokenSet\": true"), "{stdout}");
    assert!(
        !d.state().join("secrets.json").exists(),
        "nothing went to the file store"
    );
}
