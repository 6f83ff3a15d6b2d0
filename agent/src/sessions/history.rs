//! A session's conversation: every frame with its `seq`, appended to a file in the
//! data dir (`<seq>\t<json>` per line) and kept in memory only as a short tail, so
//! a long conversation costs a few kilobytes of RAM and all of it stays readable —
//! after a refresh, an agent restart, or once the session has ended.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Frames kept in memory (the rest are read from the file on demand).
const RECENT_FRAMES: usize = 64;
const RECENT_BYTES: usize = 64 * 1024;

/// One frame as sent on the socket.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub json: Arc<str>,
    /// This is `session.stopped`: the last frame of a session.
    pub is_stop: bool,
}

impl Frame {
    pub fn new(seq: u64, json: Arc<str>) -> Self {
        let is_stop = json.contains(r#""type":"session.stopped""#);
        Self { seq, json, is_stop }
    }
}

pub struct History {
    path: PathBuf,
    file: Option<File>,
    recent: VecDeque<Frame>,
    recent_bytes: usize,
    head: u64,
}

impl History {
    /// Opens (or creates) the history file, reading where it left off.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let mut history = History {
            path,
            file: None,
            recent: VecDeque::new(),
            recent_bytes: 0,
            head: 0,
        };
        if history.path.exists() {
            for frame in read_frames(&history.path, 0)? {
                history.head = frame.seq;
                history.remember(frame);
            }
        }
        Ok(history)
    }

    pub fn head(&self) -> u64 {
        self.head
    }

    fn remember(&mut self, frame: Frame) {
        self.recent_bytes += frame.json.len();
        self.recent.push_back(frame);
        while self.recent.len() > RECENT_FRAMES
            || (self.recent_bytes > RECENT_BYTES && self.recent.len() > 1)
        {
            if let Some(old) = self.recent.pop_front() {
                self.recent_bytes -= old.json.len();
            }
        }
    }

    /// Appends the next frame. A failed write is logged: the frame still goes out
    /// live, only a later replay would miss it.
    pub fn append(&mut self, frame: Frame) {
        if self.file.is_none() {
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| tracing::error!(path = %self.path.display(), error = %e, "cannot open session history"))
                .ok();
        }
        if let Some(file) = self.file.as_mut() {
            let line = format!("{}\t{}\n", frame.seq, frame.json);
            if let Err(e) = file.write_all(line.as_bytes()) {
                tracing::error!(path = %self.path.display(), error = %e, "cannot append session history");
            }
        }
        self.head = frame.seq;
        self.remember(frame);
    }

    /// Frames with `seq > since`, oldest first, at most `limit`.
    pub fn since(&self, since: u64, limit: usize) -> std::io::Result<Vec<Frame>> {
        let oldest_recent = self.recent.front().map(|f| f.seq).unwrap_or(u64::MAX);
        if since + 1 >= oldest_recent || self.head <= since {
            return Ok(self
                .recent
                .iter()
                .filter(|f| f.seq > since)
                .take(limit)
                .cloned()
                .collect());
        }
        let mut frames = read_frames(&self.path, since)?;
        frames.truncate(limit);
        Ok(frames)
    }

    /// Releases the file handle (the session ended; its history stays readable).
    pub fn close(&mut self) {
        self.file = None;
    }
}

/// Reads frames with `seq > since` from a history file; a torn last line (a
/// crash mid-write) is skipped.
pub fn read_frames(path: &Path, since: u64) -> std::io::Result<Vec<Frame>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut frames = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let Some((seq, json)) = line.split_once('\t') else {
            continue;
        };
        let Ok(seq) = seq.parse::<u64>() else {
            continue;
        };
        if seq > since && serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok() {
            frames.push(Frame::new(seq, Arc::from(json)));
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame::new(
            seq,
            Arc::from(
                format!(
                    r#"{{"seq":{seq},"type":"agent.output","update":{{"n":"{}"}}}}"#,
                    "x".repeat(2000)
                )
                .as_str(),
            ),
        )
    }

    #[test]
    fn keeps_everything_on_disk_and_a_tail_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.history");
        let mut h = History::open(path.clone()).unwrap();
        for seq in 1..=500 {
            h.append(frame(seq));
        }
        assert!(h.recent.len() <= RECENT_FRAMES && h.recent_bytes <= RECENT_BYTES + 4096);
        let all = h.since(0, 10_000).unwrap();
        assert_eq!(
            all.iter().map(|f| f.seq).collect::<Vec<_>>(),
            (1..=500).collect::<Vec<_>>()
        );
        assert_eq!(h.since(498, 10).unwrap().len(), 2);
        assert_eq!(h.since(500, 10).unwrap().len(), 0);
        assert_eq!(h.since(10, 5).unwrap().first().unwrap().seq, 11);
        // Reopened (an agent restart): the same frames, the same head.
        drop(h);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"501\t{\"torn")
            .unwrap();
        let h = History::open(path).unwrap();
        assert_eq!(h.head(), 500);
        assert_eq!(h.since(0, 10_000).unwrap().len(), 500);
    }
}
