//! An in-repo fake of the Hetzner Cloud API (the endpoints SAM uses), for tests
//! that must never reach api.hetzner.cloud.
//!
//! - **Shapes**: answers are modelled on the API's documented responses, every
//!   required field present and nullable ones as explicit `null`s (the `hcloud`
//!   models SAM reads them with are strict). Listings page (`page`, `per_page`,
//!   `meta.pagination`) and filter (`name`, `label_selector` `k=v[,k=v]`,
//!   `architecture`, `type`). Every answer carries `RateLimit-*` headers.
//! - **Checks**: `Authorization: Bearer <token>` or 401 `unauthorized`; JSON bodies
//!   (`json_error`), required fields and values (`invalid_input`), unique names
//!   (`uniqueness_error`), the project's server limit (`resource_limit_exceeded`),
//!   a firewall still applied to a server (`resource_in_use`).
//! - **Records** every call (method, path, query, body, status, when), so tests
//!   assert what was created and deleted, and in what order.
//! - **Fails on demand** at any named step ([`Fake::fail`]): one API error, a burst
//!   of 429s (with `Retry-After` or `RateLimit-Reset`), 5xx answers, or the step's
//!   own failure (`action.create_server`: the create action ends in `error`;
//!   `boot.ssh`: the server boots without the SSH key; `boot.hostkey`: it boots with
//!   a host key of its own instead of the user data's, as if someone were in
//!   between; `boot.agent`: something holds the agent's port on the server, so the
//!   agent cannot listen).
//! - **Boots** a server once its create action finishes: the server's "public
//!   IPv4" is a loopback address 127.a.b.c of its own, and on port 22 there a real
//!   OpenSSH server runs as root — in its own mount namespace (`unshare --mount`)
//!   with a private `/etc/ssh` bind-mounted from the server's folder, holding the
//!   one-time host key read from the user data (as cloud-init's `ssh_keys` would
//!   write it) and, as `authorized_keys`, the SSH key resources named at creation.
//!   So the server-side `ssh-keygen` that rewrites `/etc/ssh/ssh_host_*_key` and the
//!   sshd reload touch only this server's files. Sessions get `HOME` set to the
//!   server's own folder (`SetEnv`), where the agent is installed. Power off / shut
//!   down kill every process in that mount namespace (sshd, the agent); power on
//!   starts sshd again with the host keys the server has now; delete also removes
//!   the Docker objects of the nodes installed there and the folder.
//!
//! Not emulated: the firewall does not filter packets (its rules are checked and
//! recorded); cloud-init does not run (Docker is the machine's own).

#![allow(dead_code)]
// Handlers answer early with a ready `Response` as the error; its size is no concern
// in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::common::cleanup_node;
use crate::common::ssh::fingerprint_of;

/// How a step fails.
#[derive(Debug, Clone)]
pub enum Fail {
    /// One answer with this status and Hetzner error code.
    Error {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
    /// `times` answers 429 `rate_limit_exceeded`, with `Retry-After: secs` and/or
    /// `RateLimit-Reset: now + secs` when given.
    RateLimit {
        times: u32,
        retry_after: Option<u64>,
        reset_in: Option<i64>,
    },
    /// `times` answers with this 5xx status.
    Unavailable { times: u32, status: u16 },
    /// The step's own failure (`action.create_server`, `boot.ssh`, `boot.agent`).
    Break,
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
    pub status: u16,
    pub at: Instant,
    /// When, as a UNIX time in nanoseconds (to compare with Docker's times).
    pub at_unix_nanos: i128,
}

struct Machine {
    dir: tempfile::TempDir,
    ip: String,
    sshd: Option<Child>,
    /// The mount namespace of the running server (`/proc/PID/ns/mnt`).
    ns: Option<String>,
    /// `boot.agent`: holds the agent's port on the server's address.
    holder: Option<TcpListener>,
    agent_port: Option<u16>,
    authorized: Vec<String>,
    block_ssh: bool,
    /// `boot.hostkey`: boots with a host key of the image's own, not the user data's.
    own_host_key: bool,
}

impl Drop for Machine {
    /// A machine that goes away leaves no process behind.
    fn drop(&mut self) {
        halt(self);
    }
}

struct Server {
    json: Value,
    user_data: String,
    machine: Option<Machine>,
}

struct St {
    token: String,
    next_id: i64,
    ssh_keys: BTreeMap<i64, Value>,
    firewalls: BTreeMap<i64, Value>,
    servers: BTreeMap<i64, Server>,
    actions: BTreeMap<i64, Value>,
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<Fail>>,
    action_delay: Duration,
    server_limit: usize,
}

pub struct Fake {
    rt: Option<tokio::runtime::Runtime>,
    pub port: u16,
    pub token: String,
    st: Arc<Mutex<St>>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn error_body(code: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "details": details}})
}

fn api_error(status: u16, code: &str, message: &str) -> Response {
    respond(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        error_body(code, message, json!({})),
    )
}

fn invalid(field: &str, message: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        error_body(
            "invalid_input",
            &format!("invalid input in field '{field}'"),
            json!({"fields": [{"name": field, "messages": [message]}]}),
        ),
    )
}

fn respond(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    rate_headers(r.headers_mut(), 3599);
    r
}

fn rate_headers(h: &mut HeaderMap, remaining: u32) {
    let reset = chrono::Utc::now().timestamp() + 1;
    h.insert("ratelimit-limit", HeaderValue::from_static("3600"));
    h.insert("ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
}

fn pagination(page: usize, per_page: usize, total: usize) -> Value {
    let last = total.div_ceil(per_page).max(1);
    json!({"pagination": {
        "page": page,
        "per_page": per_page,
        "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
        "next_page": if page < last { json!(page + 1) } else { Value::Null },
        "last_page": last,
        "total_entries": total,
    }})
}

// ---- the catalogue: server types, locations, images ----

fn location(name: &str) -> Option<Value> {
    let (id, description, city, country, lat, lon, zone) = match name {
        "fsn1" => (
            1,
            "Falkenstein DC Park 1",
            "Falkenstein",
            "DE",
            50.47612,
            12.370071,
            "eu-central",
        ),
        "nbg1" => (
            2,
            "Nuremberg DC Park 1",
            "Nuremberg",
            "DE",
            49.452102,
            11.076665,
            "eu-central",
        ),
        "hel1" => (
            3,
            "Helsinki DC Park 1",
            "Helsinki",
            "FI",
            60.169855,
            24.938379,
            "eu-central",
        ),
        "ash" => (
            4,
            "Ashburn, VA",
            "Ashburn, VA",
            "US",
            39.0437,
            -77.4875,
            "us-east",
        ),
        _ => return None,
    };
    Some(json!({
        "id": id, "name": name, "description": description, "country": country,
        "city": city, "latitude": lat, "longitude": lon, "network_zone": zone,
    }))
}

const LOCATIONS: [&str; 4] = ["fsn1", "nbg1", "hel1", "ash"];

fn price(location: &str, monthly: &str, hourly: &str) -> Value {
    json!({
        "location": location,
        "price_hourly": {"net": hourly, "gross": hourly},
        "price_monthly": {"net": monthly, "gross": monthly},
        "included_traffic": 21990232555520_i64,
        "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000"},
    })
}

fn server_type(name: &str) -> Option<Value> {
    let (id, cores, memory, disk, cpu, arch, monthly, locs): (
        i64,
        i64,
        f64,
        i64,
        &str,
        &str,
        &str,
        &[&str],
    ) = match name {
        "cx22" => (
            104,
            2,
            4.0,
            40,
            "shared",
            "x86",
            "4.5100000000",
            &["fsn1", "nbg1", "hel1"],
        ),
        "cpx21" => (
            10,
            3,
            4.0,
            80,
            "shared",
            "x86",
            "8.9900000000",
            &["fsn1", "nbg1", "hel1", "ash"],
        ),
        "ccx13" => (
            96,
            2,
            8.0,
            80,
            "dedicated",
            "x86",
            "14.8600000000",
            &["fsn1", "nbg1", "hel1", "ash"],
        ),
        "cax11" => (
            45,
            2,
            4.0,
            40,
            "shared",
            "arm",
            "4.5100000000",
            &["fsn1", "nbg1", "hel1"],
        ),
        _ => return None,
    };
    Some(json!({
        "id": id,
        "name": name,
        "description": name.to_uppercase(),
        "category": if cpu == "dedicated" { "dedicated_cpu" } else { "cost_optimized" },
        "cores": cores,
        "memory": memory,
        "disk": disk,
        "deprecated": false,
        "deprecation": null,
        "prices": locs.iter().map(|l| price(l, monthly, "0.0073000000")).collect::<Vec<_>>(),
        "storage_type": "local",
        "cpu_type": cpu,
        "architecture": arch,
        "locations": locs.iter().map(|l| json!({
            "id": location(l).map(|v| v["id"].clone()).unwrap_or(Value::Null),
            "name": l,
            "deprecation": null,
        })).collect::<Vec<_>>(),
    }))
}

const SERVER_TYPES: [&str; 4] = ["cx22", "cpx21", "ccx13", "cax11"];

fn image(id: i64) -> Option<Value> {
    let (name, description, flavor, version, arch) = match id {
        114690387 => ("debian-12", "Debian 12", "debian", "12", "x86"),
        114690389 => ("debian-12", "Debian 12", "debian", "12", "arm"),
        161547269 => ("ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", "x86"),
        _ => return None,
    };
    Some(json!({
        "id": id,
        "type": "system",
        "status": "available",
        "name": name,
        "description": description,
        "image_size": null,
        "disk_size": 5,
        "created": "2023-06-13T06:00:02+00:00",
        "created_from": null,
        "bound_to": null,
        "os_flavor": flavor,
        "os_version": version,
        "rapid_deploy": true,
        "protection": {"delete": false},
        "deprecated": null,
        "deleted": null,
        "labels": {},
        "architecture": arch,
    }))
}

const IMAGES: [i64; 3] = [114690387, 114690389, 161547269];

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn valid_cidr(s: &str) -> bool {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, b.parse::<u8>().ok()),
        None => return false,
    };
    match (addr.parse::<std::net::IpAddr>(), bits) {
        (Ok(std::net::IpAddr::V4(_)), Some(b)) => b <= 32,
        (Ok(std::net::IpAddr::V6(_)), Some(b)) => b <= 128,
        _ => false,
    }
}

fn labels_match(labels: &Value, selector: &str) -> bool {
    selector.split(',').all(|term| {
        let term = term.trim();
        match term.split_once("==").or_else(|| term.split_once('=')) {
            Some((k, v)) => labels.get(k.trim()).and_then(|x| x.as_str()) == Some(v.trim()),
            None => labels.get(term).is_some(),
        }
    })
}

/// A loopback address of its own for a server's "public IPv4", with port 22 free.
fn free_loopback_ip() -> String {
    loop {
        let b: [u8; 3] = rand::random();
        let ip = format!(
            "127.{}.{}.{}",
            100 + b[0] % 150,
            1 + b[1] % 253,
            2 + b[2] % 252
        );
        if TcpListener::bind((ip.as_str(), 22)).is_ok() {
            return ip;
        }
    }
}

impl St {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn take_failure(&mut self, step: &str) -> Option<Fail> {
        let queue = self.failures.get_mut(step)?;
        let fail = queue.front_mut()?.clone();
        let done = match queue.front_mut()? {
            Fail::RateLimit { times, .. } | Fail::Unavailable { times, .. } => {
                *times = times.saturating_sub(1);
                *times == 0
            }
            _ => true,
        };
        if done {
            queue.pop_front();
        }
        Some(fail)
    }

    fn action(&mut self, command: &str, resources: Vec<(i64, &str)>) -> Value {
        let id = self.id();
        let a = json!({
            "id": id,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": now_text(),
            "finished": null,
            "resources": resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
            "error": null,
        });
        self.actions.insert(id, a.clone());
        a
    }

    fn finish(&mut self, id: i64, error: Option<(&str, &str)>) {
        if let Some(a) = self.actions.get_mut(&id) {
            a["progress"] = json!(100);
            a["finished"] = json!(now_text());
            match error {
                None => a["status"] = json!("success"),
                Some((code, message)) => {
                    a["status"] = json!("error");
                    a["error"] = json!({"code": code, "message": message});
                }
            }
        }
    }

    fn list(&self, kind: &str) -> Vec<Value> {
        match kind {
            "ssh_keys" => self.ssh_keys.values().cloned().collect(),
            "firewalls" => self.firewalls.values().cloned().collect(),
            "servers" => self.servers.values().map(|s| s.json.clone()).collect(),
            "server_types" => SERVER_TYPES.iter().filter_map(|n| server_type(n)).collect(),
            "locations" => LOCATIONS.iter().filter_map(|n| location(n)).collect(),
            "images" => IMAGES.iter().filter_map(|i| image(*i)).collect(),
            _ => vec![],
        }
    }
}

fn listing(items: Vec<Value>, key: &str, q: &HashMap<String, String>) -> Response {
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|v| q.get("name").is_none_or(|n| v["name"].as_str() == Some(n)))
        .filter(|v| {
            q.get("label_selector")
                .is_none_or(|s| labels_match(&v["labels"], s))
        })
        .filter(|v| {
            q.get("architecture")
                .is_none_or(|a| v["architecture"].as_str() == Some(a))
        })
        .filter(|v| q.get("type").is_none_or(|t| v["type"].as_str() == Some(t)))
        .collect();
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 50);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let start = ((page - 1) * per_page).min(total);
    let end = (start + per_page).min(total);
    let page_items: Vec<Value> = items.drain(start..end).collect();
    respond(
        StatusCode::OK,
        json!({ key: page_items, "meta": pagination(page, per_page, total) }),
    )
}

fn failure_response(fail: &Fail) -> Option<Response> {
    match fail {
        Fail::Error {
            status,
            code,
            message,
        } => Some(api_error(*status, code, message)),
        Fail::RateLimit {
            retry_after,
            reset_in,
            ..
        } => {
            let mut r = respond(
                StatusCode::TOO_MANY_REQUESTS,
                error_body(
                    "rate_limit_exceeded",
                    "limit of 3600 requests per hour reached",
                    Value::Null,
                ),
            );
            rate_headers(r.headers_mut(), 0);
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", HeaderValue::from(*s));
            }
            if let Some(s) = reset_in {
                r.headers_mut().insert(
                    "ratelimit-reset",
                    HeaderValue::from(chrono::Utc::now().timestamp() + s),
                );
            }
            Some(r)
        }
        Fail::Unavailable { status, .. } => Some(api_error(
            *status,
            if *status == 503 {
                "unavailable"
            } else {
                "server_error"
            },
            "service temporarily unavailable",
        )),
        Fail::Break => None,
    }
}

impl Fake {
    pub fn start(token: &str) -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let st = Arc::new(Mutex::new(St {
            token: token.to_string(),
            next_id: 1000,
            ssh_keys: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            servers: BTreeMap::new(),
            actions: BTreeMap::new(),
            calls: Vec::new(),
            failures: HashMap::new(),
            action_delay: Duration::from_millis(150),
            server_limit: 10,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let app_st = st.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let st = app_st.clone();
                    async move { handle(st, method, uri, headers, body).await }
                },
            );
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            rt: Some(rt),
            port,
            token: token.to_string(),
            st,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a failure for `step` (see the module docs for the names).
    pub fn fail(&self, step: &str, fail: Fail) {
        self.lock()
            .failures
            .entry(step.to_string())
            .or_default()
            .push_back(fail);
    }

    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    pub fn set_server_limit(&self, n: usize) {
        self.lock().server_limit = n;
    }

    /// How long actions (create, power, delete) take.
    pub fn set_action_delay(&self, delay: Duration) {
        self.lock().action_delay = delay;
    }

    /// A server that exists in the project already (not booted).
    pub fn seed_server(&self, name: &str) -> i64 {
        let mut st = self.lock();
        let id = st.id();
        let json = server_json(
            id,
            name,
            "off",
            "cx22",
            114690387,
            "fsn1",
            "127.0.0.9",
            &json!({}),
            &[],
        );
        st.servers.insert(
            id,
            Server {
                json,
                user_data: String::new(),
                machine: None,
            },
        );
        id
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn ssh_keys(&self) -> Vec<Value> {
        self.lock().list("ssh_keys")
    }

    pub fn firewalls(&self) -> Vec<Value> {
        self.lock().list("firewalls")
    }

    pub fn servers(&self) -> Vec<Value> {
        self.lock().list("servers")
    }

    /// No server, firewall or SSH key exists in the project.
    pub fn is_empty(&self) -> bool {
        let st = self.lock();
        st.servers.is_empty() && st.firewalls.is_empty() && st.ssh_keys.is_empty()
    }

    pub fn user_data(&self, server_id: i64) -> String {
        self.lock()
            .servers
            .get(&server_id)
            .map(|s| s.user_data.clone())
            .unwrap_or_default()
    }

    /// The server's folder ("its disk"): `etc-ssh/`, `home/`, logs.
    pub fn server_dir(&self, server_id: i64) -> Option<PathBuf> {
        self.lock()
            .servers
            .get(&server_id)
            .and_then(|s| s.machine.as_ref().map(|m| m.dir.path().to_path_buf()))
    }

    /// The server's ed25519 host key fingerprint now.
    pub fn host_fingerprint(&self, server_id: i64) -> Option<String> {
        let dir = self.server_dir(server_id)?;
        Some(fingerprint_of(
            &dir.join("etc-ssh/ssh_host_ed25519_key.pub"),
        ))
    }

    /// Processes running on the server (in its mount namespace).
    pub fn processes(&self, server_id: i64) -> Vec<u32> {
        let st = self.lock();
        st.servers
            .get(&server_id)
            .and_then(|s| s.machine.as_ref())
            .and_then(|m| m.ns.clone())
            .map(|ns| pids_in(&ns))
            .unwrap_or_default()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let servers: Vec<Server> = {
            let mut st = self.lock();
            std::mem::take(&mut st.servers).into_values().collect()
        };
        for s in servers {
            if let Some(mut m) = s.machine {
                halt(&mut m);
                cleanup_docker(&m);
            }
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn server_json(
    id: i64,
    name: &str,
    status: &str,
    type_name: &str,
    image_id: i64,
    location_name: &str,
    ip: &str,
    labels: &Value,
    firewalls: &[i64],
) -> Value {
    let loc = location(location_name).unwrap_or(Value::Null);
    let octets: Vec<&str> = ip.split('.').rev().collect();
    json!({
        "id": id,
        "name": name,
        "status": status,
        "created": now_text(),
        "public_net": {
            "ipv4": {"id": id + 500000, "ip": ip, "blocked": false, "dns_ptr": format!("static.{}.clients.your-server.de", octets.join("."))},
            "ipv6": {"id": id + 600000, "ip": format!("2001:db8:{:x}::/64", id % 0xffff), "blocked": false, "dns_ptr": []},
            "floating_ips": [],
            "firewalls": firewalls.iter().map(|f| json!({"id": f, "status": "applied"})).collect::<Vec<_>>(),
        },
        "private_net": [],
        "server_type": server_type(type_name).unwrap_or(Value::Null),
        "datacenter": {
            "id": loc["id"].as_i64().unwrap_or(0) + 1,
            "name": format!("{location_name}-dc14"),
            "description": format!("{} virtual DC 14", loc["city"].as_str().unwrap_or("")),
            "location": loc.clone(),
            "server_types": {"supported": [104, 10, 96, 45], "available": [104, 10, 96, 45], "available_for_migration": [104, 10, 96, 45]},
        },
        "image": image(image_id).unwrap_or(Value::Null),
        "iso": null,
        "rescue_enabled": false,
        "locked": false,
        "backup_window": null,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": 21990232555520_i64,
        "protection": {"delete": false, "rebuild": false},
        "labels": labels,
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": server_type(type_name).map(|t| t["disk"].clone()).unwrap_or(json!(40)),
        "placement_group": null,
        "location": loc,
    })
}

async fn handle(
    st: Arc<Mutex<St>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body_json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!({"unparsable": String::from_utf8_lossy(&body)}))
    };
    let at = Instant::now();
    let at_unix_nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
    let response = route(&st, &method, &path, &query, &headers, &body).await;
    let mut guard = st.lock().unwrap_or_else(|p| p.into_inner());
    guard.calls.push(Call {
        method: method.to_string(),
        path,
        query,
        body: body_json,
        status: response.status().as_u16(),
        at,
        at_unix_nanos,
    });
    response
}

async fn route(
    st: &Arc<Mutex<St>>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let lock = || st.lock().unwrap_or_else(|p| p.into_inner());
    {
        let token = lock().token.clone();
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {token}") {
            return respond(
                StatusCode::UNAUTHORIZED,
                error_body("unauthorized", "unable to authenticate", Value::Null),
            );
        }
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return api_error(404, "not_found", "not found");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let q: HashMap<String, String> = query.iter().cloned().collect();
    let step = match (method.as_str(), parts.as_slice()) {
        ("GET", [kind]) => format!("{kind}.list"),
        ("POST", [kind]) => format!("{kind}.create"),
        ("GET", [kind, _]) => format!("{kind}.get"),
        ("DELETE", [kind, _]) => format!("{kind}.delete"),
        ("POST", ["servers", _, "actions", a]) => format!("servers.{a}"),
        _ => String::new(),
    };
    if let Some(fail) = lock().take_failure(&step)
        && let Some(r) = failure_response(&fail)
    {
        return r;
    }
    let parsed = || -> Result<Value, Response> {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| api_error(400, "json_error", &format!("invalid JSON: {e}")))
            .and_then(|v| {
                if v.is_object() {
                    Ok(v)
                } else {
                    Err(api_error(400, "json_error", "a JSON object is expected"))
                }
            })
    };
    let id_of = |s: &str| s.parse::<i64>().ok();
    match (method.as_str(), parts.as_slice()) {
        (
            "GET",
            [
                kind @ ("server_types" | "locations" | "images" | "servers" | "firewalls"
                | "ssh_keys"),
            ],
        ) => {
            let items = lock().list(kind);
            listing(items, kind, &q)
        }
        ("GET", ["actions", id]) => match id_of(id).and_then(|i| lock().actions.get(&i).cloned()) {
            Some(a) => respond(StatusCode::OK, json!({"action": a})),
            None => api_error(404, "not_found", "action not found"),
        },
        ("GET", ["servers", id]) => {
            match id_of(id).and_then(|i| lock().servers.get(&i).map(|s| s.json.clone())) {
                Some(s) => respond(StatusCode::OK, json!({"server": s})),
                None => api_error(404, "not_found", "server not found"),
            }
        }
        ("POST", ["ssh_keys"]) => match parsed() {
            Ok(b) => create_ssh_key(&mut lock(), &b),
            Err(r) => r,
        },
        ("POST", ["firewalls"]) => match parsed() {
            Ok(b) => create_firewall(&mut lock(), &b),
            Err(r) => r,
        },
        ("POST", ["servers"]) => match parsed() {
            Ok(b) => create_server(st, &b),
            Err(r) => r,
        },
        (
            "POST",
            [
                "servers",
                id,
                "actions",
                action @ ("poweron" | "poweroff" | "shutdown"),
            ],
        ) => match id_of(id) {
            Some(i) => power(st, i, action),
            None => api_error(404, "not_found", "server not found"),
        },
        ("DELETE", ["servers", id]) => match id_of(id) {
            Some(i) => delete_server(st, i),
            None => api_error(404, "not_found", "server not found"),
        },
        ("DELETE", ["firewalls", id]) => {
            let mut st = lock();
            let Some(i) = id_of(id) else {
                return api_error(404, "not_found", "firewall not found");
            };
            let Some(fw) = st.firewalls.get(&i) else {
                return api_error(404, "not_found", "firewall not found");
            };
            if fw["applied_to"].as_array().is_some_and(|a| !a.is_empty()) {
                return api_error(
                    422,
                    "resource_in_use",
                    &format!("firewall with ID {i} is still in use"),
                );
            }
            st.firewalls.remove(&i);
            let mut r = StatusCode::NO_CONTENT.into_response();
            rate_headers(r.headers_mut(), 3599);
            r
        }
        ("DELETE", ["ssh_keys", id]) => {
            let mut st = lock();
            match id_of(id).and_then(|i| st.ssh_keys.remove(&i)) {
                Some(_) => {
                    let mut r = StatusCode::NO_CONTENT.into_response();
                    rate_headers(r.headers_mut(), 3599);
                    r
                }
                None => api_error(404, "not_found", "SSH key not found"),
            }
        }
        _ => api_error(404, "not_found", &format!("no route {method} {path}")),
    }
}

fn labels_of(b: &Value) -> Result<Value, Response> {
    match b.get("labels") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(m)) if m.values().all(|v| v.is_string()) => Ok(Value::Object(m.clone())),
        Some(_) => Err(invalid("labels", "labels must map strings to strings")),
    }
}

fn create_ssh_key(st: &mut St, b: &Value) -> Response {
    let Some(name) = b["name"].as_str().filter(|n| !n.is_empty()) else {
        return invalid("name", "Missing data for required field.");
    };
    let Some(public_key) = b["public_key"].as_str() else {
        return invalid("public_key", "Missing data for required field.");
    };
    let labels = match labels_of(b) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // ssh-keygen checks the key and gives its MD5 fingerprint, as Hetzner shows it.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("k.pub");
    std::fs::write(&file, public_key).expect("write key");
    let out = Command::new("ssh-keygen")
        .args(["-E", "md5", "-lf"])
        .arg(&file)
        .output()
        .expect("ssh-keygen");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(fp) = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.strip_prefix("MD5:"))
        .filter(|_| out.status.success())
    else {
        return invalid("public_key", "invalid public key");
    };
    if st.ssh_keys.values().any(|k| k["name"] == name) {
        return respond(
            StatusCode::CONFLICT,
            error_body(
                "uniqueness_error",
                "SSH key with the same name already exists",
                json!({"fields": [{"name": "name"}]}),
            ),
        );
    }
    if st.ssh_keys.values().any(|k| k["fingerprint"] == fp) {
        return respond(
            StatusCode::CONFLICT,
            error_body(
                "uniqueness_error",
                "SSH key with the same fingerprint already exists",
                json!({"fields": [{"name": "public_key"}]}),
            ),
        );
    }
    let id = st.id();
    let key = json!({
        "id": id,
        "name": name,
        "fingerprint": fp,
        "public_key": public_key,
        "labels": labels,
        "created": now_text(),
    });
    st.ssh_keys.insert(id, key.clone());
    respond(StatusCode::CREATED, json!({"ssh_key": key}))
}

fn create_firewall(st: &mut St, b: &Value) -> Response {
    let Some(name) = b["name"].as_str().filter(|n| !n.is_empty()) else {
        return invalid("name", "Missing data for required field.");
    };
    let labels = match labels_of(b) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut rules = Vec::new();
    for rule in b["rules"].as_array().cloned().unwrap_or_default() {
        let direction = rule["direction"].as_str().unwrap_or("");
        let protocol = rule["protocol"].as_str().unwrap_or("");
        if !matches!(direction, "in" | "out") {
            return invalid("rules", "direction must be in or out");
        }
        if !matches!(protocol, "tcp" | "udp" | "icmp" | "esp" | "gre") {
            return invalid("rules", "unknown protocol");
        }
        let port = rule["port"].as_str();
        if matches!(protocol, "tcp" | "udp") {
            let ok = port.is_some_and(|p| {
                let (a, z) = p.split_once('-').unwrap_or((p, p));
                matches!((a.parse::<u16>(), z.parse::<u16>()), (Ok(a), Ok(z)) if a >= 1 && a <= z)
            });
            if !ok {
                return invalid("rules", "port is required for tcp and udp (N or N-M)");
            }
        } else if port.is_some() {
            return invalid("rules", "port is only allowed for tcp and udp");
        }
        let ips = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (source, destination) = (ips("source_ips"), ips("destination_ips"));
        let needed = if direction == "in" {
            &source
        } else {
            &destination
        };
        if needed.is_empty() || !needed.iter().all(|c| valid_cidr(c)) {
            return invalid(
                "rules",
                "source_ips (in) / destination_ips (out) must be CIDRs",
            );
        }
        rules.push(json!({
            "description": rule.get("description").cloned().unwrap_or(Value::Null),
            "direction": direction,
            "port": port,
            "protocol": protocol,
            "source_ips": if direction == "in" { json!(source) } else { json!([]) },
            "destination_ips": if direction == "out" { json!(destination) } else { json!([]) },
        }));
    }
    if st.firewalls.values().any(|f| f["name"] == name) {
        return respond(
            StatusCode::CONFLICT,
            error_body(
                "uniqueness_error",
                "firewall with the same name already exists",
                json!({"fields": [{"name": "name"}]}),
            ),
        );
    }
    let id = st.id();
    let fw = json!({
        "id": id,
        "name": name,
        "labels": labels,
        "created": now_text(),
        "rules": rules,
        "applied_to": [],
    });
    st.firewalls.insert(id, fw.clone());
    respond(StatusCode::CREATED, json!({"firewall": fw, "actions": []}))
}

fn create_server(shared: &Arc<Mutex<St>>, b: &Value) -> Response {
    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
    let Some(name) = b["name"].as_str() else {
        return invalid("name", "Missing data for required field.");
    };
    if !valid_hostname(name) {
        return invalid("name", "Name must be a valid hostname.");
    }
    let Some(type_name) = b["server_type"].as_str() else {
        return invalid("server_type", "Missing data for required field.");
    };
    let Some(stype) = server_type(type_name) else {
        return invalid("server_type", "server type not found");
    };
    let Some(image_name) = b["image"].as_str() else {
        return invalid("image", "Missing data for required field.");
    };
    let arch = stype["architecture"].as_str().unwrap_or("");
    let Some(image_id) = IMAGES.iter().copied().find(|i| {
        image(*i).is_some_and(|v| v["name"] == image_name && v["architecture"] == arch)
            || i.to_string() == image_name
    }) else {
        return invalid("image", "image not found");
    };
    let location_name = b["location"].as_str().unwrap_or("fsn1");
    if location(location_name).is_none() {
        return invalid("location", "location not found");
    }
    if !stype["locations"]
        .as_array()
        .is_some_and(|l| l.iter().any(|x| x["name"] == location_name))
    {
        return api_error(
            412,
            "resource_unavailable",
            "server type is not available in this location",
        );
    }
    let labels = match labels_of(b) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut authorized = Vec::new();
    for k in b["ssh_keys"].as_array().cloned().unwrap_or_default() {
        let wanted = match &k {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return invalid("ssh_keys", "SSH keys are IDs or names"),
        };
        match st.ssh_keys.values().find(|v| {
            v["name"] == wanted.as_str()
                || v["id"].as_i64().is_some_and(|i| i.to_string() == wanted)
        }) {
            Some(v) => authorized.push(v["public_key"].as_str().unwrap_or("").to_string()),
            None => return invalid("ssh_keys", &format!("SSH key {wanted} not found")),
        }
    }
    let mut firewall_ids = Vec::new();
    for f in b["firewalls"].as_array().cloned().unwrap_or_default() {
        match f["firewall"].as_i64() {
            Some(id) if st.firewalls.contains_key(&id) => firewall_ids.push(id),
            _ => return invalid("firewalls", "firewall not found"),
        }
    }
    let user_data = match b.get("user_data") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= 32 * 1024 => s.clone(),
        Some(_) => return invalid("user_data", "user_data must be a string of at most 32 KiB"),
    };
    if st.servers.values().any(|s| s.json["name"] == name) {
        return respond(
            StatusCode::CONFLICT,
            error_body(
                "uniqueness_error",
                "server name is already used",
                json!({"fields": [{"name": "name"}]}),
            ),
        );
    }
    if st.servers.len() >= st.server_limit {
        return api_error(
            403,
            "resource_limit_exceeded",
            "server limit exceeded (contact support to raise it)",
        );
    }
    let id = st.id();
    let ip = free_loopback_ip();
    let json = server_json(
        id,
        name,
        "initializing",
        type_name,
        image_id,
        location_name,
        &ip,
        &labels,
        &firewall_ids,
    );
    for f in &firewall_ids {
        if let Some(fw) = st.firewalls.get_mut(f) {
            fw["applied_to"] = json!([{"type": "server", "server": {"id": id}}]);
        }
    }
    let start = b["start_after_create"].as_bool().unwrap_or(true);
    let create = st.action("create_server", vec![(id, "server")]);
    let next = if start {
        vec![st.action("start_server", vec![(id, "server")])]
    } else {
        vec![]
    };
    // Where the agent will listen: the firewall's other port.
    let agent_port = firewall_ids
        .iter()
        .filter_map(|f| st.firewalls.get(f))
        .flat_map(|fw| fw["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["port"].as_str().and_then(|p| p.parse::<u16>().ok()))
        .find(|p| *p != 22);
    let mut stored = json.clone();
    stored["locked"] = json!(true);
    st.servers.insert(
        id,
        Server {
            json: stored,
            user_data: user_data.clone(),
            machine: None,
        },
    );
    let break_action = matches!(st.take_failure("action.create_server"), Some(Fail::Break));
    let block_ssh = matches!(st.take_failure("boot.ssh"), Some(Fail::Break));
    let own_host_key = matches!(st.take_failure("boot.hostkey"), Some(Fail::Break));
    let hold_agent = matches!(st.take_failure("boot.agent"), Some(Fail::Break));
    let delay = st.action_delay;
    drop(st);

    let shared = shared.clone();
    let (create_id, next_ids): (i64, Vec<i64>) = (
        create["id"].as_i64().unwrap_or(0),
        next.iter().filter_map(|a| a["id"].as_i64()).collect(),
    );
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if break_action {
            let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
            st.finish(
                create_id,
                Some(("action_failed", "creating the server failed")),
            );
            for n in next_ids {
                st.finish(n, Some(("action_failed", "creating the server failed")));
            }
            if let Some(s) = st.servers.get_mut(&id) {
                s.json["status"] = json!("off");
                s.json["locked"] = json!(false);
            }
            return;
        }
        let booted = tokio::task::spawn_blocking(move || {
            let mut m = Machine {
                dir: tempfile::tempdir().expect("tempdir"),
                ip,
                sshd: None,
                ns: None,
                holder: None,
                agent_port,
                authorized,
                block_ssh,
                own_host_key,
            };
            first_boot(&m, &user_data);
            if start {
                boot(&mut m, hold_agent)?;
            }
            Ok::<Machine, String>(m)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        match booted {
            Ok(m) => {
                st.finish(create_id, None);
                for n in next_ids {
                    st.finish(n, None);
                }
                match st.servers.get_mut(&id) {
                    Some(s) if s.json["status"] == "initializing" => {
                        s.json["status"] = json!(if start { "running" } else { "off" });
                        s.json["locked"] = json!(false);
                        s.machine = Some(m);
                    }
                    // Deleted while it booted: it goes (dropping it halts it).
                    _ => {
                        drop(st);
                        tokio::task::spawn_blocking(move || {
                            cleanup_docker(&m);
                            drop(m);
                        });
                    }
                }
            }
            Err(why) => {
                eprintln!("fake Hetzner: server {id} did not boot: {why}");
                st.finish(create_id, Some(("action_failed", "server did not boot")));
                if let Some(s) = st.servers.get_mut(&id) {
                    s.json["status"] = json!("off");
                    s.json["locked"] = json!(false);
                }
            }
        }
    });
    respond(
        StatusCode::CREATED,
        json!({"server": json, "action": create, "next_actions": next, "root_password": null}),
    )
}

fn power(shared: &Arc<Mutex<St>>, id: i64, what: &str) -> Response {
    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
    let Some(server) = st.servers.get(&id) else {
        return api_error(404, "not_found", "server not found");
    };
    let status = server.json["status"].as_str().unwrap_or("").to_string();
    if status == "deleting" || server.json["locked"] == true {
        return api_error(423, "locked", "server is locked: an action is running");
    }
    let command = match what {
        "poweron" => "start_server",
        "poweroff" => "stop_server",
        _ => "shutdown_server",
    };
    let action = st.action(command, vec![(id, "server")]);
    let action_id = action["id"].as_i64().unwrap_or(0);
    let delay = st.action_delay;
    let machine = st.servers.get_mut(&id).and_then(|s| s.machine.take());
    if let Some(s) = st.servers.get_mut(&id) {
        s.json["status"] = json!(if what == "poweron" {
            "starting"
        } else {
            "stopping"
        });
        s.json["locked"] = json!(true);
    }
    drop(st);
    let shared = shared.clone();
    let on = what == "poweron";
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let result = tokio::task::spawn_blocking(move || {
            let mut m = machine?;
            if on {
                if m.sshd.is_none() {
                    let _ = boot(&mut m, false);
                }
            } else {
                halt(&mut m);
            }
            Some(m)
        })
        .await
        .ok()
        .flatten();
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        st.finish(action_id, None);
        if let Some(s) = st.servers.get_mut(&id) {
            s.json["status"] = json!(if on { "running" } else { "off" });
            s.json["locked"] = json!(false);
            s.machine = result;
        }
    });
    respond(StatusCode::CREATED, json!({"action": action}))
}

fn delete_server(shared: &Arc<Mutex<St>>, id: i64) -> Response {
    let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
    match st.servers.get(&id) {
        None => return api_error(404, "not_found", "server not found"),
        Some(s) if s.json["locked"] == true || s.json["status"] == "deleting" => {
            return api_error(423, "locked", "server is locked: an action is running");
        }
        Some(_) => {}
    }
    let action = st.action("delete_server", vec![(id, "server")]);
    let action_id = action["id"].as_i64().unwrap_or(0);
    let delay = st.action_delay;
    let machine = st.servers.get_mut(&id).and_then(|s| s.machine.take());
    if let Some(s) = st.servers.get_mut(&id) {
        s.json["status"] = json!("deleting");
    }
    drop(st);
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(mut m) = machine {
                halt(&mut m);
                cleanup_docker(&m);
            }
        })
        .await;
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        st.servers.remove(&id);
        for fw in st.firewalls.values_mut() {
            if let Some(list) = fw["applied_to"].as_array_mut() {
                list.retain(|a| a["server"]["id"].as_i64() != Some(id));
            }
        }
        st.finish(action_id, None);
    });
    respond(StatusCode::OK, json!({"action": action}))
}

// ---- the machine ----

/// What cloud-init does once: the host key from the user data (or, without one,
/// a key of the image's own), root's authorized keys from the SSH key resources.
fn first_boot(m: &Machine, user_data: &str) {
    let d = m.dir.path();
    std::fs::create_dir_all(d.join("etc-ssh")).expect("etc-ssh");
    std::fs::create_dir_all(d.join("home")).expect("home");
    let doc: Value = user_data
        .strip_prefix("#cloud-config\n")
        .and_then(|y| serde_yaml_ng::from_str(y).ok())
        .unwrap_or(Value::Null);
    let key = d.join("etc-ssh/ssh_host_ed25519_key");
    match (
        doc["ssh_keys"]["ed25519_private"].as_str(),
        doc["ssh_keys"]["ed25519_public"].as_str(),
    ) {
        (Some(private), Some(public)) if !m.own_host_key => {
            std::fs::write(&key, private).expect("host key");
            std::fs::write(key.with_extension("pub"), format!("{public}\n")).expect("host key");
        }
        _ => {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ssh-keygen");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    if Path::new("/etc/ssh/moduli").exists() {
        let _ = std::fs::copy("/etc/ssh/moduli", d.join("etc-ssh/moduli"));
    }
    let keys = if m.block_ssh {
        String::new()
    } else {
        m.authorized.join("\n") + "\n"
    };
    std::fs::write(d.join("authorized_keys"), keys).expect("authorized_keys");
    std::fs::write(
        d.join("etc-ssh/sshd_config"),
        format!(
            "ListenAddress {ip}:22\nHostKey /etc/ssh/ssh_host_ed25519_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nSetEnv HOME={d}/home\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n",
            ip = m.ip,
            d = d.display()
        ),
    )
    .expect("sshd_config");
}

/// Starts the server's sshd in its own mount namespace; waits until it listens.
fn boot(m: &mut Machine, hold_agent: bool) -> Result<(), String> {
    std::fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
    let d = m.dir.path();
    if hold_agent && let Some(port) = m.agent_port {
        m.holder = Some(TcpListener::bind((m.ip.as_str(), port)).map_err(|e| e.to_string())?);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("sshd.log"))
        .map_err(|e| e.to_string())?;
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/ssh && exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config")
        .arg(d.join("etc-ssh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let pid = child.id();
    m.sshd = Some(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((m.ip.as_str(), 22)).is_err() {
        if Instant::now() > deadline
            || m.sshd
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
        {
            let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            halt(m);
            return Err(format!("sshd did not listen on {}:22: {log}", m.ip));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let ours = std::fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    // Power-off kills everything in the namespace: never the machine's own.
    if ns.is_none() || ns == ours {
        halt(m);
        return Err("sshd is not in a mount namespace of its own".into());
    }
    m.ns = ns;
    Ok(())
}

/// Every process in a mount namespace.
fn pids_in(ns: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("ns/mnt")).is_ok_and(|p| p.to_string_lossy() == ns)
        {
            let zombie = std::fs::read_to_string(entry.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("State:") && l.contains('Z'))
            });
            if !zombie {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Power off: every process of the server ends (SIGTERM, then SIGKILL).
fn halt(m: &mut Machine) {
    if let Some(ns) = m.ns.take() {
        for sig in ["-TERM", "-KILL"] {
            for pid in pids_in(&ns) {
                let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while !pids_in(&ns).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    if let Some(mut c) = m.sshd.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    m.holder = None;
}

/// The Docker objects of every node installed on the server.
fn cleanup_docker(m: &Machine) {
    let installs = m.dir.path().join("home/.local/share/sam-agent");
    for entry in std::fs::read_dir(installs).into_iter().flatten().flatten() {
        cleanup_node(&entry.file_name().to_string_lossy());
    }
}
