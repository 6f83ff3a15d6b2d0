//! Ports of a workspace: which TCP ports listen inside it, and connections to them
//! made **inside the container's network namespace** (so servers bound to
//! 127.0.0.1 or ::1, as dev servers are by default, are reached), with no host port
//! published.

pub mod proxy;

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use sam_protocol::Port;

/// How long a connect inside the container may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP ports in LISTEN state in the network namespace of process `pid`, read from
/// the host through /proc (no tools needed in the image).
pub fn listening(pid: u32) -> io::Result<Vec<Port>> {
    let mut ports = BTreeSet::new();
    let mut any = false;
    for table in ["tcp", "tcp6"] {
        let text = match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        any = true;
        ports.extend(parse_listening(&text));
    }
    if !any {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no /proc/net/tcp"));
    }
    Ok(ports
        .into_iter()
        .map(|port| Port {
            port,
            protocol: "tcp".into(),
        })
        .collect())
}

/// 127.0.0.11 as /proc/net/tcp writes it: Docker's embedded DNS resolver, which
/// listens inside every container on a user-defined network (each workspace's)
/// on a random port. Not the workspace's, so not listed.
const DOCKER_DNS: &str = "0B00007F";

/// Local ports of the LISTEN (`0A`) rows of a /proc/net/tcp{,6} table.
fn parse_listening(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (addr, port) = local.rsplit_once(':')?;
        if addr == DOCKER_DNS {
            return None;
        }
        u16::from_str_radix(port, 16).ok()
    })
}

/// Why a connection into a workspace failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("nothing listens on port {0} in the workspace")]
    Refused(u16),
    #[error("cannot enter the workspace's network: {0}")]
    Namespace(io::Error),
}

/// Connects to `port` on the loopback of process `pid`'s network namespace
/// (IPv4 first, then IPv6). A short-lived thread enters the namespace, connects,
/// and hands the socket back; the socket stays in that namespace.
pub async fn connect(pid: u32, port: u16) -> Result<tokio::net::TcpStream, ConnectError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sam-netns-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(pid, port));
        })
        .map_err(ConnectError::Namespace)?;
    let stream = rx
        .await
        .map_err(|_| ConnectError::Namespace(io::Error::other("connect thread died")))??;
    stream
        .set_nonblocking(true)
        .map_err(ConnectError::Namespace)?;
    let _ = stream.set_nodelay(true);
    tokio::net::TcpStream::from_std(stream).map_err(ConnectError::Namespace)
}

fn connect_blocking(pid: u32, port: u16) -> Result<TcpStream, ConnectError> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(ConnectError::Namespace)?;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| ConnectError::Namespace(e.into()))?;
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT)
        .or_else(|_| TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT))
        .map_err(|_| ConnectError::Refused(port))
}

#[cfg(test)]
mod tests {
    use super::parse_listening;

    #[test]
    fn reads_listening_ports_from_proc_net_tcp() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0B00007F:82F3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listening(v4).collect::<Vec<_>>(), [3000, 8080]);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0";
        assert_eq!(parse_listening(v6).collect::<Vec<_>>(), [5432]);
    }
}
