//! `sam-agent tls-init`: the node's TLS key pair, made on the node so its private
//! key never leaves it. The desktop runs this over SSH, reads the certificate's
//! fingerprint from stdout and pins it.
//!
//! Invariants: `tls.key` is written with mode 0600 (never readable by others, not
//! even for a moment: created 0600, then renamed into place); an existing usable
//! pair is kept unless `--force`, so running it twice changes nothing; the
//! fingerprint is `SHA256:` + base64 (no padding) of the certificate's DER — the
//! desktop's `agent_client::pinning::fingerprint`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::Datelike;
use sha2::{Digest, Sha256};

pub const KEY_FILE: &str = "tls.key";
pub const CERT_FILE: &str = "tls.crt";
/// How long a certificate made here is valid: the desktop pins it, so it is never
/// "renewed" by a CA; replacing it is `--force` plus re-adding the node.
pub const VALID_YEARS: i32 = 10;

#[derive(Debug, clap::Args)]
pub struct TlsInitArgs {
    /// Folder for tls.key (0600) and tls.crt; created if missing.
    #[arg(long)]
    pub dir: PathBuf,
    /// A host name or IP address the desktop connects to (repeatable); the first
    /// is the certificate's common name.
    #[arg(long = "name", value_name = "HOST", required = true)]
    pub names: Vec<String>,
    /// Replace an existing key pair (the desktop then refuses the node until it
    /// is added again: the pinned fingerprint changes).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `tls-init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInit {
    pub fingerprint: String,
    /// False when an existing pair was kept.
    pub created: bool,
}

/// `SHA256:` + base64 (no padding) of DER bytes, as `ssh-keygen -l` writes.
pub fn fingerprint(der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(der))
    )
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()
        .filter(|der| !der.is_empty())
}

/// An IP address, or a DNS name: dot-separated labels of letters, digits and '-'.
fn is_host(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
        || (name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

/// Makes (or keeps) `dir/tls.key` and `dir/tls.crt`; answers the fingerprint.
pub fn init(args: &TlsInitArgs) -> Result<TlsInit, TlsError> {
    let names: Vec<String> = args
        .names
        .iter()
        .map(|n| n.trim().trim_start_matches('[').trim_end_matches(']'))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(TlsError::Invalid(
            "--name needs a host name or IP address".into(),
        ));
    }
    if let Some(bad) = names.iter().find(|n| !is_host(n)) {
        return Err(TlsError::Invalid(format!(
            "--name {bad:?} is not a host name or IP address"
        )));
    }
    let key_path = args.dir.join(KEY_FILE);
    let cert_path = args.dir.join(CERT_FILE);
    if !args.force
        && key_path.exists()
        && let Ok(pem) = std::fs::read_to_string(&cert_path)
        && let Some(der) = certificate_der(&pem)
    {
        return Ok(TlsInit {
            fingerprint: fingerprint(&der),
            created: false,
        });
    }

    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(|e| {
        TlsError::Invalid(format!(
            "--name {:?} is not a host name or IP address: {e}",
            names.join(" ")
        ))
    })?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, names[0].clone());
    dn.push(rcgen::DnType::OrganizationName, "sam-agent");
    params.distinguished_name = dn;
    // From yesterday (a node clock a little behind the desktop's is fine) for ten years.
    let from = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(
        from.year() + VALID_YEARS,
        from.month() as u8,
        from.day().min(28) as u8,
    );
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    create_private_dir(&args.dir)?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(TlsInit {
        fingerprint: fingerprint(cert.der()),
        created: true,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
}

/// Writes `path` through a temporary file created with `mode`, then renames it.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, names: &[&str], force: bool) -> TlsInitArgs {
        TlsInitArgs {
            dir: dir.to_path_buf(),
            names: names.iter().map(|n| n.to_string()).collect(),
            force,
        }
    }

    #[tokio::test]
    async fn the_agent_can_serve_with_the_pair() {
        let tmp = tempfile::tempdir().unwrap();
        init(&args(tmp.path(), &["localhost"], false)).unwrap();
        axum_server::tls_rustls::RustlsConfig::from_pem_file(
            tmp.path().join(CERT_FILE),
            tmp.path().join(KEY_FILE),
        )
        .await
        .expect("rustls takes the certificate and key");
    }

    #[test]
    fn makes_a_pair_with_a_private_key_and_a_fingerprint_of_the_der() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let made = init(&args(&dir, &["127.0.0.1", "node.example"], false)).unwrap();
        assert!(made.created);
        assert!(made.fingerprint.starts_with("SHA256:"));
        assert_eq!(
            made.fingerprint.len(),
            "SHA256:".len() + 43,
            "base64 of 32 bytes, no padding"
        );

        let key = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let pem = std::fs::read_to_string(dir.join(CERT_FILE)).unwrap();
        let der = certificate_der(&pem).unwrap();
        assert_eq!(fingerprint(&der), made.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        let text = String::from_utf8_lossy(&der);
        assert!(text.contains("node.example"), "the DNS name is a SAN");
        assert!(
            der.windows(4).any(|w| w == [127, 0, 0, 1]),
            "the IP address is a SAN"
        );
    }

    #[test]
    fn keeps_an_existing_pair_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let first = init(&args(tmp.path(), &["10.0.0.1"], false)).unwrap();
        let key_before = std::fs::read(tmp.path().join(KEY_FILE)).unwrap();
        let again = init(&args(tmp.path(), &["10.0.0.1"], false)).unwrap();
        assert_eq!(again.fingerprint, first.fingerprint);
        assert!(!again.created);
        assert_eq!(
            std::fs::read(tmp.path().join(KEY_FILE)).unwrap(),
            key_before
        );

        let forced = init(&args(tmp.path(), &["10.0.0.1"], true)).unwrap();
        assert!(forced.created);
        assert_ne!(forced.fingerprint, first.fingerprint);
        assert_ne!(
            std::fs::read(tmp.path().join(KEY_FILE)).unwrap(),
            key_before
        );
    }

    #[test]
    fn a_missing_or_damaged_half_is_made_again() {
        let tmp = tempfile::tempdir().unwrap();
        let first = init(&args(tmp.path(), &["h"], false)).unwrap();
        std::fs::write(tmp.path().join(CERT_FILE), "junk").unwrap();
        let second = init(&args(tmp.path(), &["h"], false)).unwrap();
        assert!(second.created);
        assert_ne!(second.fingerprint, first.fingerprint);
        std::fs::remove_file(tmp.path().join(KEY_FILE)).unwrap();
        let third = init(&args(tmp.path(), &["h"], false)).unwrap();
        assert!(third.created);
    }

    #[test]
    fn refuses_names_that_are_not_hosts() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            init(&args(tmp.path(), &["  "], false)),
            Err(TlsError::Invalid(_))
        ));
        assert!(init(&args(tmp.path(), &["not a host"], false)).is_err());
        assert!(init(&args(tmp.path(), &["a..b"], false)).is_err());
        assert!(!tmp.path().join(KEY_FILE).exists(), "nothing written");
        assert!(init(&args(tmp.path(), &["[::1]", "my-node.example"], false)).is_ok());
    }
}
