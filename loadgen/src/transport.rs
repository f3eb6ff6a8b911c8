//! The clients' HTTP: one hyper client per arbiter with pooled keep-alive connections, at most
//! `connections` requests in flight (so at most that many connections), every request measured
//! from its intended send time ([`Transport::send`]); the crash harness sends through the same
//! transport unmeasured ([`Transport::exchange`]). [`call`] is the run's own admin call. HTTPS
//! targets are reached with rustls, trusting the CA [`use_tls`] was given (and, for an MP in PKI
//! mode, presenting one client certificate for the process or one per simulated client: a
//! connection carries one certificate, so each certificate has its own connections).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protocol::envelope::{self, CONTENT_TYPE as CCM_CONTENT_TYPE, Limits, MsgHeader, Reply};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Semaphore;

use crate::metrics;
use crate::profile::{Kind, Wire};
use crate::signing::Signer;

/// How a request ended, when it did not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: connection refused or reset, timeout.
    Connection(String),
    /// An answer other than 2xx (503 under overload, with the `Retry-After` it asked for).
    Status(u16, Option<Duration>),
    /// A 2xx whose body this client could not read.
    Body(String),
}

/// The process's TLS settings: the CA HTTPS targets are trusted by, and the client certificates
/// presented, one configuration each (simulated client `i` uses configuration `i % len`).
static TLS: OnceLock<Vec<Arc<rustls::ClientConfig>>> = OnceLock::new();

/// Which client certificates HTTPS connections present.
#[derive(Debug, Clone, Copy)]
pub enum ClientCertificates<'a> {
    None,
    /// One certificate and key (PEM) for every connection of the process.
    One(&'a Path, &'a Path),
    /// A folder of `client-<i>.pem` and `client-<i>-key.pem` (what `backend pki init --clients N`
    /// writes), `i` from 0: simulated client `c` presents certificate `c % N`.
    PerClient(&'a Path),
}

/// Trust `ca` (PEM) for HTTPS targets and present `client` certificates. Once per process,
/// before any request. Returns how many client certificates were loaded.
pub fn use_tls(ca: &Path, client: ClientCertificates<'_>) -> anyhow::Result<usize> {
    let named = |path: &Path, e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| named(ca, &e))? {
        roots.add(cert.map_err(|e| named(ca, &e))?).map_err(|e| named(ca, &e))?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let with_cert = |cert: &Path, key: &Path| -> anyhow::Result<rustls::ClientConfig> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| named(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| named(cert, &e))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, &e))?;
        builder.clone().with_client_auth_cert(chain, key_der).map_err(|e| named(cert, &e))
    };
    let configs = match client {
        ClientCertificates::None => vec![builder.with_no_client_auth()],
        ClientCertificates::One(cert, key) => vec![with_cert(cert, key)?],
        ClientCertificates::PerClient(dir) => {
            let mut configs = Vec::new();
            loop {
                let i = configs.len();
                let (cert, key) =
                    (dir.join(format!("client-{i}.pem")), dir.join(format!("client-{i}-key.pem")));
                if !cert.exists() {
                    break;
                }
                configs.push(with_cert(&cert, &key)?);
            }
            if configs.is_empty() {
                return Err(named(
                    dir,
                    &"no client-0.pem (backend pki init --clients N writes client-<i>.pem)",
                ));
            }
            configs
        }
    };
    let loaded = if matches!(client, ClientCertificates::None) { 0 } else { configs.len() };
    TLS.set(configs.into_iter().map(Arc::new).collect())
        .map_err(|_| anyhow!("TLS settings are given once per process"))?;
    Ok(loaded)
}

type Connector = HttpsConnector<HttpConnector>;

fn tls_configs() -> &'static [Arc<rustls::ClientConfig>] {
    TLS.get_or_init(|| {
        // No CA given: an HTTPS target is refused as untrusted, with its reason.
        vec![Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
                .unwrap_or_else(|e| unreachable!("ring supports the default versions: {e}")),
        )]
    })
}

/// A connector for `http://` and `https://` targets, presenting client certificate `i` (of
/// [`use_tls`]'s, modulo their number).
fn connector(i: usize) -> Connector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let configs = tls_configs();
    let config = &configs[i % configs.len()];
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls::ClientConfig::clone(config))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// One arbiter's transport.
#[derive(Debug)]
pub struct Transport {
    /// One pooled client per client certificate (one when there are none or one).
    clients: Vec<Client<Connector, Full<Bytes>>>,
    /// `http://127.0.0.1:8080`, no trailing slash.
    pub base: String,
    permits: Semaphore,
    pub wire: Wire,
    /// CCM bodies' deflate level.
    pub zlib_level: u32,
    timeout: Duration,
    /// Simulated clients that use it, and the measured requests it sent and saw fail.
    pub users: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

impl Transport {
    pub fn new(base: &str, connections: usize, wire: Wire, zlib_level: u32) -> Transport {
        let clients = (0..tls_configs().len())
            .map(|i| {
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(connections)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector(i))
            })
            .collect();
        Transport {
            clients,
            base: base.trim_end_matches('/').to_owned(),
            permits: Semaphore::new(connections.max(1)),
            wire,
            zlib_level,
            timeout: Duration::from_secs(60),
            users: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The answer to `request` sent for simulated client `who` (on its certificate's
    /// connections): status, the `Retry-After` it asked for, body. Bounded by the transport's
    /// timeout; the caller holds a permit.
    async fn roundtrip(
        &self,
        who: u64,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Option<Duration>, Bytes), Failure> {
        let client = &self.clients[(who % self.clients.len() as u64) as usize];
        tokio::time::timeout(self.timeout, async {
            let response = client.request(request).await.map_err(|e| Failure::Connection(e.to_string()))?;
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let body =
                response.into_body().collect().await.map_err(|e| Failure::Connection(e.to_string()))?;
            Ok::<_, Failure>((status, retry_after, body.to_bytes()))
        })
        .await
        .unwrap_or_else(|_| Err(Failure::Connection("timed out".into())))
    }

    /// Sends `request` (to any address) unmeasured, within the connection limit. Returns the
    /// 2xx body.
    pub async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Bytes, Failure> {
        let _permit = self.permits.acquire().await.map_err(|e| Failure::Connection(e.to_string()))?;
        match self.roundtrip(0, request).await? {
            (status, _, body) if status.is_success() => Ok(body),
            (status, retry_after, _) => Err(Failure::Status(status.as_u16(), retry_after)),
        }
    }

    /// Sends one request for simulated client `who`, built by `build` once a connection is free
    /// (so requests waiting for one hold no body); records it under `kind` against `intended`.
    /// Returns the 2xx body.
    pub async fn send(
        &self,
        kind: Kind,
        intended: Instant,
        who: u64,
        build: impl FnOnce() -> Result<Request<Full<Bytes>>, Failure>,
    ) -> Result<Bytes, Failure> {
        // The generator's own delay: how late it got to this send. Waiting for one of the
        // connections after that is the target's doing (its answers hold them): it counts in the
        // latency, from `intended`, not as lateness.
        metrics::started(intended, Instant::now());
        let _permit = self.permits.acquire().await.map_err(|e| Failure::Connection(e.to_string()))?;
        let building = Instant::now();
        let request = build()?;
        let started = Instant::now();
        metrics::built(kind, started.saturating_duration_since(building));
        let outcome = self.roundtrip(who, request).await;
        let done = Instant::now();
        self.sent.fetch_add(1, Ordering::Relaxed);
        if !matches!(&outcome, Ok((status, _, _)) if status.is_success()) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Ok((status, _, body)) if status.is_success() => {
                metrics::finished(kind, intended, started, done, true, true);
                Ok(body)
            }
            Ok((status, retry_after, _)) => {
                metrics::finished(kind, intended, started, done, true, false);
                Err(Failure::Status(status.as_u16(), retry_after))
            }
            Err(e) => {
                metrics::finished(kind, intended, started, done, false, false);
                Err(e)
            }
        }
    }

    /// A message to an MP endpoint, on the profile's wire, its XML built by `xml` once a
    /// connection is free. Returns the reply body XML (empty for `NoReply`).
    pub async fn mp<X: Into<Bytes>>(
        &self,
        kind: Kind,
        intended: Instant,
        who: u64,
        header: MsgHeader,
        xml: impl FnOnce() -> X,
    ) -> Result<String, Failure> {
        self.mp_signed(kind, intended, who, header, None, xml).await
    }

    /// [`Transport::mp`], signed by `signer` when there is one (the `clientauth` hook).
    pub async fn mp_signed<X: Into<Bytes>>(
        &self,
        kind: Kind,
        intended: Instant,
        who: u64,
        mut header: MsgHeader,
        signer: Option<Signer>,
        xml: impl FnOnce() -> X,
    ) -> Result<String, Failure> {
        let (base, wire, level) = (self.base.clone(), self.wire, self.zlib_level);
        let build = move || mp_request(wire, level, &base, &mut header, signer.as_ref(), xml().into());
        let body = self.send(kind, intended, who, build).await?;
        if self.wire == Wire::Plain || body.is_empty() {
            return String::from_utf8(body.to_vec()).map_err(|e| Failure::Body(e.to_string()));
        }
        match envelope::decode_reply(CCM_CONTENT_TYPE, &body, &Limits::default()) {
            Ok(Reply::Sync { body, .. }) => Ok(body),
            Ok(_) => Ok(String::new()),
            Err(e) => Err(Failure::Body(e.to_string())),
        }
    }

    /// A GET of `path` (`/SMS_MP/.sms_pol?...`) for simulated client `who`.
    pub async fn get(&self, kind: Kind, intended: Instant, who: u64, path: &str) -> Result<Bytes, Failure> {
        let uri = format!("{}{path}", self.base);
        let build = move || {
            Request::builder()
                .method(Method::GET)
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .map_err(|e| Failure::Body(e.to_string()))
        };
        self.send(kind, intended, who, build).await
    }
}

/// A message to an MP endpoint at `base` as an HTTP request on `wire`: the CCM envelope
/// (`CCM_POST`, UTF-16, zlib at `zlib_level`, signed by `signer` when there is one) or plain XML
/// with `X-Target-Endpoint` (which cannot be signed).
pub fn mp_request(
    wire: Wire,
    zlib_level: u32,
    base: &str,
    header: &mut MsgHeader,
    signer: Option<&Signer>,
    xml: Bytes,
) -> Result<Request<Full<Bytes>>, Failure> {
    let uri = format!("{base}/ccm_system/request");
    match wire {
        Wire::Ccm => {
            let text = std::str::from_utf8(&xml).map_err(|e| Failure::Body(e.to_string()))?;
            let body = envelope::build_signed_request(header, text, Some(zlib_level), |payload| {
                signer.map(|s| s.hook(payload))
            });
            Request::builder()
                .method(Method::from_bytes(b"CCM_POST").unwrap_or(Method::POST))
                .uri(uri)
                .header("content-type", CCM_CONTENT_TYPE)
                .body(Full::new(Bytes::from(body)))
        }
        // The XML as it is: no copy.
        Wire::Plain => Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "text/xml")
            .header("x-target-endpoint", header.target_endpoint.as_str())
            .body(Full::new(xml)),
    }
    .map_err(|e| Failure::Body(e.to_string()))
}

/// The wait a `Retry-After: <seconds>` header asks for.
pub fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A plain call for the run's own use (admin API): not measured, no permit.
pub async fn call(
    base: &str,
    method: Method,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(StatusCode, Bytes)> {
    call_with(base, method, path, body, &[], Duration::from_secs(600)).await
}

/// Where the run's own calls find the target's admin token (our backend's `--admin-token`,
/// which its sync, drain and summarize need from any peer but loopback).
pub const ADMIN_TOKEN_ENV: &str = "SUMSTORM_ADMIN_TOKEN";

/// [`call`] with extra request headers (`(name, value)`) and a time limit of its own; with
/// [`ADMIN_TOKEN_ENV`] set, the token goes along as `X-Admin-Token`.
pub async fn call_with(
    base: &str,
    method: Method,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
    limit: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let client: Client<Connector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector(0));
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", base.trim_end_matches('/')))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(token) = std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        request = request.header("x-admin-token", token);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| anyhow!("{path}: {e}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, bytes))
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| anyhow!("{path}: timed out"))?
}

pub async fn get_json(base: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = call(base, Method::GET, path, b"").await?;
    if !status.is_success() {
        return Err(anyhow!("GET {path}: {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| anyhow!("GET {path}: {e}"))
}
