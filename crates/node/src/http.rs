//! The HTTP listener in front of the API's routes, with the limits a port facing the internet
//! needs (`[http_limits]` in config.toml):
//!
//! - **Connections**: at most `max_connections` open at once, and `per_ip_connections` from one
//!   address; a connection over either cap is closed as soon as it is accepted.
//! - **Slow clients**: a request's headers must arrive within `header_timeout_ms` (a
//!   connection that never finishes them, or idles between keep-alive requests, is closed), and
//!   a whole request — body and handler — must finish within `request_timeout_ms` (`408`).
//! - **Floods**: each address has a token bucket of `per_ip_burst` requests refilled at
//!   `per_ip_requests_per_sec` (`429` when empty; 0 turns it off), and at most `max_in_flight`
//!   requests are handled at once (`503` beyond, rather than queueing).
//!
//! Every refusal is counted by reason (`platform_http_refused_total{reason}`) and the open
//! connections are a gauge (`platform_http_connections`). The checks run before a request
//! reaches a handler, so a refused request costs no body read and no state lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// `[http]`: the API listener's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Most connections open at once. Default 1,024.
    pub max_connections: usize,
    /// Most connections open at once from one IP address. Default 64.
    pub per_ip_connections: usize,
    /// Time a client has to send a request's headers (also the keep-alive idle limit), in
    /// milliseconds. Default 10,000.
    pub header_timeout_ms: u64,
    /// Time a request may take from its headers to its response, body included, in
    /// milliseconds. Default 30,000.
    pub request_timeout_ms: u64,
    /// Most requests handled at once; more are answered `503`. Default 256.
    pub max_in_flight: usize,
    /// Requests per second one IP address may sustain (0 = no limit). Default 50.
    pub per_ip_requests_per_sec: u32,
    /// Requests one IP address may send in a burst. Default 200.
    pub per_ip_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            per_ip_connections: 64,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_in_flight: 256,
            per_ip_requests_per_sec: 50,
            per_ip_burst: 200,
        }
    }
}

impl HttpLimits {
    /// Refuses limits that would refuse everything.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("per_ip_connections", self.per_ip_connections as u64),
            ("header_timeout_ms", self.header_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_in_flight", self.max_in_flight as u64),
            ("per_ip_burst", u64::from(self.per_ip_burst)),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("[http] {name} must be positive")),
            None => Ok(()),
        }
    }
}

/// Why a connection or request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `max_connections`.
    Connections,
    /// The address holds `per_ip_connections`.
    IpConnections,
    /// The headers did not arrive in time.
    HeaderTimeout,
    /// The request did not finish in time.
    RequestTimeout,
    /// The address's token bucket is empty.
    Rate,
    /// `max_in_flight` requests are being handled.
    Busy,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [
        Refusal::Connections,
        Refusal::IpConnections,
        Refusal::HeaderTimeout,
        Refusal::RequestTimeout,
        Refusal::Rate,
        Refusal::Busy,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::IpConnections => "ip_connections",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::RequestTimeout => "request_timeout",
            Refusal::Rate => "rate",
            Refusal::Busy => "busy",
        }
    }
}

/// Counters of the listener, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct HttpStats {
    refused: [AtomicU64; 6],
    connections: AtomicU64,
}

impl HttpStats {
    fn refuse(&self, r: Refusal) {
        self.refused[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals for one reason so far.
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r as usize].load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus' text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::from(
            "# HELP platform_http_refused_total Connections and requests the API listener refused.\n\
             # TYPE platform_http_refused_total counter\n",
        );
        for r in Refusal::ALL {
            out.push_str(&format!(
                "platform_http_refused_total{{reason=\"{}\"}} {}\n",
                r.label(),
                self.refused(r)
            ));
        }
        out.push_str(&format!(
            "# TYPE platform_http_connections gauge\nplatform_http_connections {}\n",
            self.connections()
        ));
        out
    }
}

/// Token buckets per address. Full buckets are forgotten once there are many, so the map is
/// bounded by the addresses active within one refill time.
struct Buckets {
    rate: u32,
    burst: u32,
    map: HashMap<IpAddr, (f64, Instant)>,
}

/// Addresses tracked before full buckets are swept.
const MAX_TRACKED: usize = 16_384;

impl Buckets {
    fn take(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(self.rate), f64::from(self.burst));
        if self.map.len() >= MAX_TRACKED {
            self.map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = self.map.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What every connection task shares.
struct Shared {
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    buckets: Mutex<Buckets>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Holds a connection's place in the counts until it closes.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared
            .stats
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.shared.per_ip.lock().expect("per-ip lock poisoned");
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    fn admit_connection(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock poisoned");
        if self.stats.connections() as usize >= self.limits.max_connections {
            return Err(Refusal::Connections);
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.per_ip_connections {
            return Err(Refusal::IpConnections);
        }
        *n += 1;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }

    async fn handle(&self, app: Router, ip: IpAddr, req: Request<Body>) -> Response<Body> {
        let allowed = self
            .buckets
            .lock()
            .expect("buckets lock poisoned")
            .take(ip, Instant::now());
        if !allowed {
            self.stats.refuse(Refusal::Rate);
            return refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this address",
            );
        }
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.refuse(Refusal::Busy);
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the API is busy; try again",
            );
        };
        let timeout = Duration::from_millis(self.limits.request_timeout_ms);
        match tokio::time::timeout(timeout, app.oneshot(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                self.stats.refuse(Refusal::RequestTimeout);
                refusal(StatusCode::REQUEST_TIMEOUT, "the request took too long")
            }
        }
    }
}

fn refusal(code: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": reason }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves `app` on `listener` within `limits` until `stop` resolves. Connections already open
/// finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    stop: impl std::future::Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        limits,
        stats,
        per_ip: Mutex::new(HashMap::new()),
        buckets: Mutex::new(Buckets {
            rate: limits.per_ip_requests_per_sec,
            burst: limits.per_ip_burst,
            map: HashMap::new(),
        }),
        in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight)),
    });
    tokio::pin!(stop);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting an API connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match shared.admit_connection(peer.ip()) {
            Ok(slot) => slot,
            Err(r) => {
                shared.stats.refuse(r);
                drop(stream);
                continue;
            }
        };
        let (shared, app) = (shared.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let ip = peer.ip();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (shared, app) = (shared.clone(), app.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        shared.handle(app, ip, req.map(Body::new)).await,
                    )
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(_slot.shared.limits.header_timeout_ms));
            // Upgrades: JSON-RPC subscriptions over WebSocket (`crate::rpc`).
            let served = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(e) = served
                && e.is_timeout()
            {
                _slot.shared.stats.refuse(Refusal::HeaderTimeout);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = Buckets {
            rate: 10,
            burst: 3,
            map: HashMap::new(),
        };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| b.take(ip, t0)));
        assert!(!b.take(ip, t0));
        // Another address has its own bucket.
        assert!(b.take(other, t0));
        // A tenth of a second refills one token at 10 per second.
        assert!(b.take(ip, t0 + Duration::from_millis(100)));
        assert!(!b.take(ip, t0 + Duration::from_millis(100)));
        // Rate 0: no limit.
        let mut open = Buckets {
            rate: 0,
            burst: 1,
            map: HashMap::new(),
        };
        assert!((0..100).all(|_| open.take(ip, t0)));
    }

    #[test]
    fn limits_that_refuse_everything_are_refused() {
        assert_eq!(HttpLimits::default().check(), Ok(()));
        let bad = HttpLimits {
            max_in_flight: 0,
            ..HttpLimits::default()
        };
        assert!(bad.check().unwrap_err().contains("max_in_flight"));
    }
}
