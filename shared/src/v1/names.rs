//! CONTRACT §4 "Workspace names": the normalisation and suffix rules, shared so the
//! desktop can predict what the agent will do.

/// Longest display name, in characters, before any suffix.
pub const WORKSPACE_NAME_MAX_CHARS: usize = 64;

/// Trim, collapse inner whitespace to one space. This is what is stored and shown.
pub fn clean_display_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key two names are compared by: the cleaned name, lower-cased.
pub fn name_key(name: &str) -> String {
    clean_display_name(name).to_lowercase()
}

/// Checks a requested display name and returns it cleaned.
pub fn validate_display_name(name: &str) -> Result<String, String> {
    let cleaned = clean_display_name(name);
    let chars = cleaned.chars().count();
    if chars == 0 {
        return Err("displayName must not be empty".into());
    }
    if chars > WORKSPACE_NAME_MAX_CHARS {
        return Err(format!(
            "displayName is {chars} characters long; the limit is {WORKSPACE_NAME_MAX_CHARS}"
        ));
    }
    if cleaned.chars().any(char::is_control) {
        return Err("displayName must not contain control characters".into());
    }
    Ok(cleaned)
}

/// The project folder's name: lower-cased, every run of characters other than
/// `a-z0-9` turned into one `-`, trimmed of `-`. A name with none of those
/// characters gets `workspace`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    if out.is_empty() {
        out.push_str("workspace");
    }
    out
}

/// The first of `base`, `base-2`, `base-3`, … whose key `taken` does not hold.
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&name_key(base)) {
        return base.to_string();
    }
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken(&name_key(candidate)))
        .expect("an unbounded range always yields a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_keys() {
        assert_eq!(clean_display_name("  My   API \t x "), "My API x");
        assert_eq!(name_key(" My  API "), "my api");
    }

    #[test]
    fn validates_length_after_cleaning() {
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name(&"a".repeat(64)).is_ok());
        assert!(validate_display_name(&"a".repeat(65)).is_err());
        assert!(validate_display_name(&format!("  {}  ", "é".repeat(64))).is_ok());
        assert!(validate_display_name("a\u{7}b").is_err());
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("My API"), "my-api");
        assert_eq!(slug("--Hello__World!!"), "hello-world");
        assert_eq!(slug("日本"), "workspace");
        assert_eq!(slug("a..b"), "a-b");
    }

    #[test]
    fn suffixes() {
        let taken = ["api", "api-2"];
        assert_eq!(unique_name("API", |k| taken.contains(&k)), "API-3");
        assert_eq!(unique_name("web", |k| taken.contains(&k)), "web");
    }
}
