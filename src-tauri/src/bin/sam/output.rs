//! Output conventions (CLI.md): results on stdout (tables, or JSON with `--json`);
//! progress, prompts and warnings on stderr; confirmations before anything stops.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use sam_desktop::Error;
use sam_desktop::api::Progress;
use serde::Serialize;

pub struct Out {
    pub json: bool,
    pub yes: bool,
}

/// Progress steps on stderr.
pub struct Steps;

impl Progress for Steps {
    fn step(&self, message: &str) {
        eprintln!("→ {message}");
    }
}

pub fn fail(e: &Error) -> ExitCode {
    eprintln!("error: {}", e.message);
    if let Some(h) = &e.hint {
        eprintln!("hint: {h}");
    }
    ExitCode::from(1)
}

impl Out {
    /// One resource: JSON, or the human lines.
    pub fn one<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", human());
        }
    }

    /// A listing: a JSON array, or a table.
    pub fn list<T: Serialize>(
        &self,
        items: &[T],
        header: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(items).unwrap_or_default()
            );
            return;
        }
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("{}", line(header.iter().map(|h| h.to_string()).collect()));
        for r in rows {
            println!("{}", line(r));
        }
    }

    /// Asks before stopping or deleting: `--yes` skips; no terminal refuses.
    pub fn confirm(&self, what: &str) -> Result<(), Error> {
        if self.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::new(
                "confirmation_needed",
                format!("{what} needs confirmation, and there is no terminal to ask on."),
            )
            .hint("Pass --yes to go ahead."));
        }
        eprint!("{what}: continue? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Ok(())
        } else {
            Err(Error::new("cancelled", "Nothing was changed."))
        }
    }
}

/// "3 minutes ago" for a time.
pub fn ago(t: Option<sam_protocol::Timestamp>) -> String {
    let Some(t) = t else { return "never".into() };
    let s = (chrono::Utc::now() - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// `K=V` pairs into a map.
pub fn env_pairs(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut map = std::collections::BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("--env {p:?} must be K=V")))?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

pub fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}
