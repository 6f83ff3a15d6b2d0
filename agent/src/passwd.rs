//! Users of a running container, read from the host through `/proc/<pid>/root`
//! (no tools needed in the image, whatever its libc).

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub shell: String,
}

/// Finds `user` (a name, a uid, or `name:group` / `uid:gid` as Docker accepts) in
/// the container of process `pid`. An empty user is root.
pub fn lookup(pid: u32, user: &str) -> Option<User> {
    let passwd = std::fs::read_to_string(format!("/proc/{pid}/root/etc/passwd")).ok()?;
    lookup_in(&passwd, user)
}

fn lookup_in(passwd: &str, user: &str) -> Option<User> {
    let user = if user.is_empty() { "root" } else { user };
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let found = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == name || f[2] == name)
        .and_then(|f| {
            Some(User {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                shell: f[6].to_string(),
            })
        });
    // A numeric user with no entry still runs (Docker allows it).
    let mut found = found.or_else(|| {
        name.parse().ok().map(|uid| User {
            name: name.to_string(),
            uid,
            gid: uid,
            shell: "/bin/sh".into(),
        })
    })?;
    if let Some(gid) = group.and_then(|g| g.parse().ok()) {
        found.gid = gid;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::lookup_in;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndev:x:1000:1001::/home/dev:/bin/zsh\n";

    #[test]
    fn finds_users_by_name_and_uid() {
        assert_eq!(lookup_in(PASSWD, "").unwrap().uid, 0);
        let dev = lookup_in(PASSWD, "dev").unwrap();
        assert_eq!(
            (dev.uid, dev.gid, dev.shell.as_str()),
            (1000, 1001, "/bin/zsh")
        );
        assert_eq!(lookup_in(PASSWD, "1000").unwrap().name, "dev");
        assert_eq!(lookup_in(PASSWD, "dev:7").unwrap().gid, 7);
        assert_eq!(lookup_in(PASSWD, "4242").unwrap().uid, 4242);
        assert!(lookup_in(PASSWD, "nobody").is_none());
    }
}
