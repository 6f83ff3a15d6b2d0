//! Workspaces cannot reach the cloud metadata address (169.254.169.254).
//!
//! The test never sends to a real metadata service: it builds its own "cloud" in a
//! network namespace holding 169.254.169.254 and a control address 169.254.169.253,
//! and routes only this workspace's traffic there (policy routing by source
//! address), so nothing else on the machine is affected.

mod common;

use std::process::Command;

use common::*;

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn must(cmd: &str) {
    let (ok, out) = sh(cmd);
    assert!(ok, "{cmd}: {out}");
}

/// Packets our REJECT rule matched so far.
fn rule_packets() -> u64 {
    let (_, out) = sh("iptables -w 5 -L DOCKER-USER -v -n -x");
    out.lines()
        .filter(|l| l.contains("169.254.169.254") && l.contains("REJECT") && l.contains("sam+"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

struct FakeCloud {
    ns: String,
    host_if: String,
    table: u32,
    rule: String,
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let _ = sh(&format!("ip rule del {} 2>/dev/null", self.rule));
        let _ = sh(&format!("ip route flush table {}", self.table));
        let _ = sh(&format!("ip netns pids {} | xargs -r kill", self.ns));
        let _ = sh(&format!("ip link del {} 2>/dev/null", self.host_if));
        let _ = sh(&format!("ip netns del {}", self.ns));
    }
}

#[tokio::test]
async fn workspaces_cannot_reach_the_metadata_address() {
    let agent = Agent::start().await;
    let ws = agent.running("metadata").await;
    let container = format!("sam-ws-{}", ws.id);
    let (ok, ip) = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &container,
    ]);
    assert!(ok, "{ip}");
    let ip = ip.trim().to_string();

    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let octet = rand::random::<u8>() & 0x3f;
    let table = 20000 + (rand::random::<u16>() as u32 % 10000);
    let rule = format!("from {ip}/32 to 169.254.169.0/24 lookup {table} priority 90");
    let cloud = FakeCloud {
        ns: format!("samcloud{tag}"),
        host_if: format!("smh{tag}"),
        table,
        rule: rule.clone(),
    };
    let (host_ip, ns_ip) = (format!("198.18.{octet}.1"), format!("198.18.{octet}.2"));
    let ns = &cloud.ns;
    let host_if = &cloud.host_if;
    let ns_if = format!("smn{tag}");
    must(&format!("ip netns add {ns}"));
    must(&format!(
        "ip link add {host_if} type veth peer name {ns_if}"
    ));
    must(&format!("ip link set {ns_if} netns {ns}"));
    must(&format!(
        "ip addr add {host_ip}/30 dev {host_if} && ip link set {host_if} up"
    ));
    must(&format!(
        "ip -n {ns} addr add {ns_ip}/30 dev {ns_if} && ip -n {ns} link set {ns_if} up && ip -n {ns} link set lo up \
         && ip -n {ns} addr add 169.254.169.254/32 dev lo && ip -n {ns} addr add 169.254.169.253/32 dev lo \
         && ip -n {ns} route add default via {host_ip}"
    ));
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "fake-metadata\n").unwrap();
    must(&format!(
        "ip netns exec {ns} busybox httpd -p 80 -h {}",
        www.path().display()
    ));
    must(&format!(
        "ip route add 169.254.169.0/24 via {ns_ip} dev {host_if} table {table}"
    ));
    must(&format!("ip rule add {rule}"));

    // The control address in the same fake cloud answers: the path works…
    // busybox's static wget crashes in glibc's resolver here; nc speaks HTTP fine.
    let get = |addr: &str| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} 80");
    let (ok, out) = docker_exec(&ws.id, None, &get("169.254.169.253"));
    assert!(
        ok && out.contains("fake-metadata"),
        "control address unreachable: {out}"
    );
    // …and the metadata address does not, refused by the agent's rule.
    let before = rule_packets();
    let (ok, out) = docker_exec(&ws.id, None, &get("169.254.169.254"));
    assert!(
        !ok && !out.contains("fake-metadata"),
        "metadata address reachable: {out}"
    );
    assert!(
        rule_packets() > before,
        "the agent's REJECT rule did not match"
    );

    drop(cloud);
    agent.delete(&ws.id).await;
}
