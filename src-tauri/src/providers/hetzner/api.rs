//! The Hetzner Cloud API as the provider uses it: a few endpoints, every body
//! typed with the `hcloud` crate's models (generated from Hetzner's OpenAPI
//! document, strict about required fields), sent with reqwest.
//!
//! Why not `hcloud`'s generated functions: they drop the response headers, so a
//! 429's `Retry-After` / `RateLimit-Reset` could never be honoured (NOTES.md), and
//! they do not retry. Here every call goes through [`Cloud::send`]:
//! - 429, 500, 502, 503, 504 and refused connections are retried, at most
//!   [`MAX_TRIES`] times in all;
//! - the wait before a retry is the server's `Retry-After` (seconds or an HTTP
//!   date) when present, else for a 429 the time until `RateLimit-Reset` (a UNIX
//!   time), else 0.5 s doubling; each wait is capped at [`MAX_WAIT`], and all of them
//!   together at [`MAX_TOTAL_WAIT`];
//! - the token goes in the `Authorization` header only: it is never logged, and no
//!   error message carries a request.

use std::time::Duration;

use hcloud::models;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, code};

/// The real API.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// Tries per request, the first included.
pub const MAX_TRIES: u32 = 6;
/// The longest single wait before a retry.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The longest time spent waiting for retries of one request.
pub const MAX_TOTAL_WAIT: Duration = Duration::from_secs(90);
const FIRST_WAIT: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The token refused (401): the error code the UI and scripts branch on.
pub const TOKEN_REFUSED: &str = "hetzner_token_refused";

/// Where the token came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `HCLOUD_TOKEN`.
    Env,
    /// `sam settings hetzner-token` (the secret store).
    Stored,
}

/// What went wrong with one call: Hetzner's own answer, or anything else.
#[derive(Debug)]
pub enum Failure {
    Api {
        status: u16,
        code: String,
        message: String,
    },
    Other(Error),
}

impl Failure {
    /// Hetzner's error code (`not_found`, `resource_in_use`, …).
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Failure::Api { code, .. } => Some(code),
            Failure::Other(_) => None,
        }
    }
}

/// One Hetzner Cloud project, reached with one token.
pub struct Cloud {
    http: reqwest::Client,
    base: String,
    token: String,
    source: TokenSource,
}

/// The wait a response asks for before the next try (`Retry-After`, else for a
/// 429 `RateLimit-Reset`), if it says.
pub fn asked_wait(
    status: StatusCode,
    retry_after: Option<&str>,
    ratelimit_reset: Option<&str>,
    now_unix: i64,
) -> Option<Duration> {
    if let Some(v) = retry_after.map(str::trim) {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
            return Some(Duration::from_secs(
                (at.timestamp() - now_unix).max(0) as u64
            ));
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(reset) = ratelimit_reset.and_then(|v| v.trim().parse::<i64>().ok())
    {
        // Hetzner's bucket refills one request a second: at least that.
        return Some(Duration::from_secs((reset - now_unix).max(1) as u64));
    }
    None
}

/// The wait before try `attempt + 1` (`attempt` counts from 1).
pub fn backoff(attempt: u32, asked: Option<Duration>) -> Duration {
    let exp = FIRST_WAIT.saturating_mul(1 << (attempt.saturating_sub(1)).min(16));
    asked.unwrap_or(exp).min(MAX_WAIT)
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

impl Cloud {
    pub fn new(endpoint: &str, token: String, source: TokenSource) -> Result<Cloud> {
        let base = endpoint.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| {
            Error::invalid(format!(
                "The Hetzner Cloud endpoint {base:?} is not a URL: {e}"
            ))
            .hint("Fix SAM_HCLOUD_ENDPOINT or `sam settings set hcloud-endpoint URL`.")
        })?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("sam-desktop/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("Cannot make an HTTP client: {e}")))?;
        Ok(Cloud {
            http,
            base,
            token,
            source,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// Sends one request (retrying as the module docs say); answers the body of
    /// a 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> std::result::Result<String, Failure> {
        let url = format!("{}{path}", self.base);
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token)
                .query(query);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let (retry, asked, last) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let header = |n: &str| {
                        resp.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let asked = asked_wait(
                        status,
                        header("retry-after").as_deref(),
                        header("ratelimit-reset").as_deref(),
                        chrono::Utc::now().timestamp(),
                    );
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let failure = api_failure(status, &text);
                    (retryable(status), asked, failure)
                }
                Err(e) => {
                    // Refused connections never reached the API: safe to repeat.
                    let again = e.is_connect() || (e.is_timeout() && method != Method::POST);
                    let failure = Failure::Other(
                        Error::new(
                            code::UNREACHABLE,
                            format!("Cannot reach the Hetzner Cloud API at {}: {}.", self.base, without_url(&e)),
                        )
                        .hint("Check this computer's internet connection (and SAM_HCLOUD_ENDPOINT or the hcloud-endpoint setting, if set), then try again."),
                    );
                    (again, None, failure)
                }
            };
            let wait = backoff(attempt, asked);
            if !retry || attempt >= MAX_TRIES || waited + wait > MAX_TOTAL_WAIT {
                return Err(match last {
                    Failure::Api {
                        status: 429,
                        code: c,
                        message,
                    } => Failure::Api {
                        status: 429,
                        code: c,
                        message: format!("{message} (still rate limited after {attempt} tries)"),
                    },
                    other => other,
                });
            }
            tracing::info!(
                path,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Hetzner Cloud asked to wait; retrying"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> std::result::Result<T, Failure> {
        let text = self.send(method, path, query, body).await?;
        serde_json::from_str(&text).map_err(|e| {
            Failure::Other(Error::new(
                code::PROVIDER,
                format!("The Hetzner Cloud API at {} answered {path} with something SAM cannot read: {e}.", self.base),
            )
            .hint("Check SAM_HCLOUD_ENDPOINT / the hcloud-endpoint setting: it must be the Hetzner Cloud API."))
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> std::result::Result<T, Failure> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> std::result::Result<T, Failure> {
        let body = serde_json::to_value(body).map_err(|e| {
            Failure::Other(Error::internal(format!("Cannot encode a request: {e}")))
        })?;
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// POST without a body (a server action: `poweron`, `shutdown`, …).
    pub async fn post_empty<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> std::result::Result<T, Failure> {
        self.call(Method::POST, path, &[], None).await
    }

    /// DELETE; answers the body (empty for 204).
    pub async fn delete(&self, path: &str) -> std::result::Result<String, Failure> {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// Every page of a listing.
    pub async fn list<R: Paged>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> std::result::Result<Vec<R::Item>, Failure> {
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", "50".into()));
            let resp: R = self.get(path, &q).await?;
            let next = resp.next_page();
            items.extend(resp.items());
            match next {
                Some(n) if n > page && page < 100 => page = n,
                _ => return Ok(items),
            }
        }
    }

    /// Turns a failure into the desktop's error, `what` saying what was being
    /// done ("create the firewall").
    pub fn error(&self, what: &str, failure: Failure) -> Error {
        let (status, hz_code, message) = match failure {
            Failure::Other(e) => return e,
            Failure::Api {
                status,
                code,
                message,
            } => (status, code, message),
        };
        let message = message.trim_end_matches('.').to_string();
        let from = match self.source {
            TokenSource::Env => "the token in HCLOUD_TOKEN",
            TokenSource::Stored => "the token stored with `sam settings hetzner-token`",
        };
        match hz_code.as_str() {
            "unauthorized" => Error::new(
                TOKEN_REFUSED,
                format!("Hetzner Cloud refused {from} ({message}); SAM could not {what}."),
            )
            .hint(match self.source {
                TokenSource::Env => "Create a Read & Write API token in the Hetzner Cloud Console (your project → Security → API tokens) and put it in HCLOUD_TOKEN, or unset HCLOUD_TOKEN to use the stored one.",
                TokenSource::Stored => "Create a Read & Write API token in the Hetzner Cloud Console (your project → Security → API tokens) and store it with `sam settings hetzner-token` (it reads the token from stdin).",
            }),
            "forbidden" | "token_readonly" => Error::new(
                TOKEN_REFUSED,
                format!("Hetzner Cloud does not allow {from} to {what} ({message})."),
            )
            .hint("The token may only read: create a Read & Write API token for the project and store it with `sam settings hetzner-token`."),
            "resource_limit_exceeded" => Error::new(
                code::LIMIT_REACHED,
                format!("Hetzner Cloud would not {what}: {message}."),
            )
            .hint("Your Hetzner Cloud project is at one of its limits (servers, cores, firewalls or SSH keys): delete what you no longer need there, or ask Hetzner to raise the limit (Cloud Console → your project → Limits)."),
            "uniqueness_error" => Error::new(
                code::CONFLICT,
                format!("Hetzner Cloud would not {what}: {message}."),
            )
            .hint("Something with that name (or, for an SSH key, that key) exists in the Hetzner project already: pick another --name, or delete the old one in the Cloud Console."),
            "resource_unavailable" | "placement_error" => Error::new(
                code::PROVIDER,
                format!("Hetzner Cloud could not {what}: {message}."),
            )
            .hint("That server type is not available there right now: try another --location or --server-type (`sam node hetzner-options` lists them)."),
            "invalid_input" | "json_error" => Error::invalid(format!(
                "Hetzner Cloud refused to {what}: {message}."
            )),
            "not_found" => Error::not_found(format!("Hetzner Cloud could not {what}: {message}.")),
            "rate_limit_exceeded" => Error::new(
                code::PROVIDER,
                format!("Hetzner Cloud is rate limiting this token; SAM could not {what} ({message})."),
            )
            .hint("Wait a few minutes (Hetzner allows 3600 requests an hour per project), then try again."),
            _ if status >= 500 => Error::new(
                code::PROVIDER,
                format!("Hetzner Cloud failed to {what} (HTTP {status}, {hz_code}: {message})."),
            )
            .hint("Hetzner Cloud has trouble right now (status.hetzner.com tells): try again later."),
            _ => Error::new(
                code::PROVIDER,
                format!("Hetzner Cloud refused to {what} (HTTP {status}, {hz_code}: {message})."),
            ),
        }
    }
}

/// A reqwest error's text without the URL (which holds no secret, but is noise).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(&format!(" for url ({u})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Hetzner's error body (`{"error": {"code", "message", "details"}}`), or what
/// the status says when the body is something else.
fn api_failure(status: StatusCode, text: &str) -> Failure {
    match serde_json::from_str::<models::ErrorResponse>(text) {
        Ok(body) => Failure::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => Failure::Api {
            status: status.as_u16(),
            code: match status.as_u16() {
                401 => "unauthorized".into(),
                403 => "forbidden".into(),
                404 => "not_found".into(),
                429 => "rate_limit_exceeded".into(),
                _ => "unknown_error".into(),
            },
            message: format!(
                "HTTP {status}{}",
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", text.chars().take(200).collect::<String>())
                }
            ),
        },
    }
}

/// A page of a listing.
pub trait Paged: DeserializeOwned {
    type Item;
    fn next_page(&self) -> Option<i64>;
    fn items(self) -> Vec<Self::Item>;
}

macro_rules! paged {
    ($resp:ty, $field:ident, $item:ty) => {
        impl Paged for $resp {
            type Item = $item;
            fn next_page(&self) -> Option<i64> {
                self.meta.pagination.next_page
            }
            fn items(self) -> Vec<$item> {
                self.$field
            }
        }
    };
}

paged!(models::ListServersResponse, servers, models::Server);
paged!(models::ListFirewallsResponse, firewalls, models::Firewall);
paged!(models::ListSshKeysResponse, ssh_keys, models::SshKey);
paged!(
    models::ListServerTypesResponse,
    server_types,
    models::ServerType
);
paged!(models::ListLocationsResponse, locations, models::Location);
paged!(models::ListImagesResponse, images, models::Image);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_headers_then_double_and_are_capped() {
        let now = 1_700_000_000;
        let tmr = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            asked_wait(tmr, Some("3"), None, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            asked_wait(tmr, None, Some(&(now + 7).to_string()), now),
            Some(Duration::from_secs(7))
        );
        // A reset in the past still waits the one second a request takes to refill.
        assert_eq!(
            asked_wait(tmr, None, Some(&(now - 5).to_string()), now),
            Some(Duration::from_secs(1))
        );
        // RateLimit-Reset means nothing on a 503; Retry-After does.
        assert_eq!(
            asked_wait(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                Some(&(now + 7).to_string()),
                now
            ),
            None
        );
        let date = chrono::DateTime::from_timestamp(now + 4, 0)
            .unwrap()
            .to_rfc2822();
        assert_eq!(
            asked_wait(StatusCode::SERVICE_UNAVAILABLE, Some(&date), None, now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(backoff(1, None), Duration::from_millis(500));
        assert_eq!(backoff(3, None), Duration::from_secs(2));
        assert_eq!(backoff(20, None), MAX_WAIT);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3600))),
            MAX_WAIT,
            "capped"
        );
    }

    #[test]
    fn errors_say_what_to_do_next() {
        let cloud = Cloud::new("http://127.0.0.1:9/v1", "t".into(), TokenSource::Env).unwrap();
        let e = cloud.error(
            "create the server",
            api_failure(
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"code":"unauthorized","message":"unable to authenticate","details":null}}"#,
            ),
        );
        assert_eq!(e.code, TOKEN_REFUSED);
        assert!(e.message.contains("HCLOUD_TOKEN"), "{}", e.message);
        assert!(e.hint.unwrap().contains("Read & Write"));
        let e = cloud.error(
            "create the server",
            api_failure(
                StatusCode::FORBIDDEN,
                r#"{"error":{"code":"resource_limit_exceeded","message":"server limit exceeded","details":{}}}"#,
            ),
        );
        assert_eq!(e.code, code::LIMIT_REACHED);
        assert!(e.hint.unwrap().contains("Limits"));
        // A body that is not Hetzner's: the status decides.
        let f = api_failure(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!(f.api_code(), Some("unknown_error"));
        let e = cloud.error("list servers", f);
        assert!(e.message.contains("HTTP 502"), "{}", e.message);
    }
}
