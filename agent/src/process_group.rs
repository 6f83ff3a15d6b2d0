//! Ending a Docker exec's process together with everything it started.
//!
//! An agent session's adapter (or a command run through ACP `terminal/*`) may
//! start processes of its own: `codex-acp` is a Node.js script that starts a
//! native binary, and when the script ends (on SIGTERM, or on its stdin closing)
//! that binary would live on in the workspace, one more per session. runc makes
//! every exec's process the leader of a new session and process group, which its
//! children inherit, so the group is the exec and all it started. It is found
//! from the host's /proc (the container's processes are visible there) and
//! remembered by its cgroup, which names the container: a group id reused later
//! by an unrelated process is never signalled.

use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::docker::Engine;

/// How long the processes get to end on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(1);

/// The fields of `/proc/<pid>/stat` used here.
struct Stat {
    state: char,
    pgrp: i32,
}

/// Reads `/proc/<pid>/stat`; the command name, in parentheses, may itself hold
/// spaces or parentheses, so fields are counted from its last `)`.
fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state ppid pgrp …
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some(Stat { state, pgrp })
}

fn cgroup(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
}

/// The process group of an exec, as seen when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecGroup {
    pgid: i32,
    cgroup: String,
}

impl ExecGroup {
    /// The group whose leader is `pid`, if `pid` runs and leads one.
    pub fn led_by(pid: i32) -> Option<ExecGroup> {
        let s = stat(pid)?;
        (s.pgrp == pid && s.state != 'Z').then_some(())?;
        Some(ExecGroup {
            pgid: pid,
            cgroup: cgroup(pid)?,
        })
    }

    /// The group of a running exec (call it right after the exec started).
    pub async fn of_exec(engine: &Engine, exec_id: &str) -> Option<ExecGroup> {
        // Docker may answer before it has recorded the pid.
        for _ in 0..10 {
            match engine.inspect_exec(exec_id).await {
                Ok(s) if s.running => {
                    if let Some(pid) = s.pid.and_then(|p| i32::try_from(p).ok()) {
                        return Self::led_by(pid);
                    }
                }
                _ => return None,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The group's live members (none once all have ended).
    fn members(&self) -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                stat(pid).is_some_and(|s| s.pgrp == self.pgid && s.state != 'Z')
                    && cgroup(pid).as_deref() == Some(self.cgroup.as_str())
            })
            .collect()
    }

    fn signal(&self, sig: Signal) -> bool {
        let members = self.members();
        for &pid in &members {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
        !members.is_empty()
    }

    /// Waits up to `limit` for every member to have ended; answers whether they have.
    async fn gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.members().is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// SIGTERM to every member, SIGKILL to those left after [`GRACE`]; also
    /// when the leader has ended already and only what it started is left.
    pub async fn end(&self) {
        if self.signal(Signal::TERM) && !self.gone(GRACE).await {
            self.signal(Signal::KILL);
            self.gone(GRACE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[tokio::test]
    async fn the_whole_group_ends_also_after_its_leader_and_despite_sigterm_being_ignored() {
        // A leader of its own group (as runc makes an exec's process) starts a
        // child that ignores SIGTERM, and a grandchild; then the leader ends,
        // orphaning them.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "(trap '' TERM; sleep 60 & sleep 61; wait) & exit 0"])
            .process_group(0)
            .spawn()
            .expect("sh");
        let pid = leader.id() as i32;
        let group = ExecGroup::led_by(pid);
        let _ = leader.wait();
        // (The leader may have ended before it was looked at: then its group is
        // known by its id and this test process's cgroup, which it shares.)
        let group = group.unwrap_or_else(|| ExecGroup {
            pgid: pid,
            cgroup: cgroup(std::process::id() as i32).expect("cgroup"),
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while group.members().len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "members: {:?}",
                group.members()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        group.end().await;
        assert_eq!(group.members(), Vec::<i32>::new());
    }

    #[test]
    fn only_a_group_leader_leads_a_group() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert_eq!(ExecGroup::led_by(me).is_some(), s.pgrp == me);
        assert!(ExecGroup::led_by(-1).is_none());
    }
}
