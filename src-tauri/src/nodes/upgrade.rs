//! Whether a node's `sam-agent` should be replaced by the one this desktop ships.
//! Pure, so it is tested on its own; `api::upgrade` acts on it.
//!
//! Versions are compared as semver (precedence: build metadata ignored); two builds
//! of one version (every development build says the same version) are told apart by
//! `build`, the start of the executable's SHA-256 (docs/protocol.md).

use std::cmp::Ordering;

/// What to do about a node's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The node runs exactly this desktop's agent.
    UpToDate,
    /// The node's agent should be replaced.
    Upgrade(Reason),
    /// The node's agent is newer than this desktop's: never downgraded on its own.
    NodeNewer,
    /// A version is not semver, so neither can be called older.
    Incomparable,
}

/// Why a node's agent is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its version is older than this desktop's.
    OlderVersion,
    /// Same version, another build (a development build, or a rebuilt release).
    OtherBuild,
    /// Same version, and the agent does not say its build (it predates the field).
    UnknownBuild,
}

/// Compares the node's agent (`version`, `build` when it says one) with this
/// desktop's.
pub fn decide(
    node_version: &str,
    node_build: Option<&str>,
    our_version: &str,
    our_build: &str,
) -> Decision {
    let (Ok(node), Ok(ours)) = (
        semver::Version::parse(node_version.trim()),
        semver::Version::parse(our_version.trim()),
    ) else {
        return Decision::Incomparable;
    };
    match node.cmp_precedence(&ours) {
        Ordering::Less => Decision::Upgrade(Reason::OlderVersion),
        Ordering::Greater => Decision::NodeNewer,
        Ordering::Equal => match node_build {
            None => Decision::Upgrade(Reason::UnknownBuild),
            Some(b) if b.eq_ignore_ascii_case(our_build) => Decision::UpToDate,
            Some(_) => Decision::Upgrade(Reason::OtherBuild),
        },
    }
}

/// `0.1.0 (build ab12cd34)`, for messages (the build shortened to 8 digits).
pub fn describe(version: &str, build: Option<&str>) -> String {
    match build {
        Some(b) => format!("{version} (build {})", b.get(..8).unwrap_or(b)),
        None => format!("{version} (build unknown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "cd34ef5600112233";

    #[test]
    fn an_older_version_is_upgraded_whatever_its_build() {
        for build in [None, Some(OURS), Some("ab12ab12ab12ab12")] {
            assert_eq!(
                decide("0.1.0", build, "0.2.0", OURS),
                Decision::Upgrade(Reason::OlderVersion)
            );
        }
        assert_eq!(
            decide("0.9.9", None, "0.10.0", OURS),
            Decision::Upgrade(Reason::OlderVersion),
            "numeric, not string, order"
        );
        assert_eq!(
            decide("1.0.0-rc.1", Some(OURS), "1.0.0", OURS),
            Decision::Upgrade(Reason::OlderVersion),
            "a pre-release is older than its release"
        );
    }

    #[test]
    fn a_newer_node_is_never_downgraded() {
        assert_eq!(
            decide("0.2.0", Some("x"), "0.1.0", OURS),
            Decision::NodeNewer
        );
        assert_eq!(decide("0.1.1", None, "0.1.0", OURS), Decision::NodeNewer);
        assert_eq!(
            decide("1.0.0", Some(OURS), "1.0.0-rc.1", OURS),
            Decision::NodeNewer
        );
    }

    #[test]
    fn equal_versions_are_told_apart_by_build() {
        assert_eq!(
            decide("0.1.0", Some(OURS), "0.1.0", OURS),
            Decision::UpToDate
        );
        assert_eq!(
            decide("0.1.0", Some(&OURS.to_uppercase()), "0.1.0", OURS),
            Decision::UpToDate
        );
        assert_eq!(
            decide("0.1.0", Some("ab12ab12ab12ab12"), "0.1.0", OURS),
            Decision::Upgrade(Reason::OtherBuild)
        );
        assert_eq!(
            decide("0.1.0", None, "0.1.0", OURS),
            Decision::Upgrade(Reason::UnknownBuild)
        );
        // Build metadata is not precedence: the build id decides.
        assert_eq!(
            decide("0.1.0+a", Some(OURS), "0.1.0+b", OURS),
            Decision::UpToDate
        );
    }

    #[test]
    fn versions_that_are_not_semver_are_left_alone() {
        assert_eq!(decide("dev", None, "0.1.0", OURS), Decision::Incomparable);
        assert_eq!(
            decide("0.1", Some(OURS), "0.1.0", OURS),
            Decision::Incomparable
        );
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            describe("0.1.0", Some("ab12cd34ef567890")),
            "0.1.0 (build ab12cd34)"
        );
        assert_eq!(describe("0.1.0", Some("ab")), "0.1.0 (build ab)");
        assert_eq!(describe("0.1.0", None), "0.1.0 (build unknown)");
    }
}
