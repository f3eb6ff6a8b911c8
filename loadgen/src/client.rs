//! One simulated ConfigMgr client: an actix actor living the client's life (contract §3.2,
//! flow.md §2-5) on the simulated clock.
//!
//! ```text
//! start (ramp-up) ─► register ─► policy poll every `policy_poll` ─► new UpdateSource version?
//!   ─► policy body ─► scan at a random moment of `scan_window` ─► 501 "running" ─► location
//!   request ─► SUP (affinity) ─► catalog ─► `scan_duration` later: 500 for every update new
//!   since the last scan + 501 "completed" ─► queued ─► one Report per `reporting_cycle`
//!   (failed sends stay queued for the next cycle; serials rise for the client's lifetime)
//! ```
//!
//! Every timer has an intended real instant (from the simulated schedule); requests are
//! measured from it. State per client is small (the queue holds scan *results* as version
//! ranges, expanded into messages only when a Report is built), so a million fit in one process.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::{Context as _, anyhow};
use protocol::bodies::{
    ClientRegistrationRequest, ClientRegistrationResponse, IpAddressInfo, ReplyAssignments,
    RequestAssignments, UpdateSourcePolicy, WsusLocationReply, WsusLocationRequest,
};
use protocol::envelope::MsgHeader;
use protocol::{Guid, Timestamp};

use crate::messages::{self, Report};
use crate::metrics;
use crate::profile::{Kind, Plan};
use crate::sim::{self, SimClock};
use crate::transport::{Failure, Transport};

/// What the site is, as the run learned it before the clients started.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    pub site_code: String,
    pub update_source_id: Guid,
}

/// One update as a catalog lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    pub index: u32,
    pub id: Guid,
    pub revision: u32,
}

/// The catalog a scan against one content version sees, by catalog index.
pub type CatalogView = Rc<Vec<CatalogEntry>>;

/// Parses the SUP's catalog endpoint's JSON.
pub fn parse_catalog(body: &[u8]) -> anyhow::Result<Vec<CatalogEntry>> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| anyhow!("catalog: {e}"))?;
    let updates = v["Updates"].as_array().context("catalog: no Updates")?;
    let mut entries = updates
        .iter()
        .map(|u| {
            Some(CatalogEntry {
                index: u["Index"].as_u64()? as u32,
                id: u["UpdateID"].as_str()?.parse().ok()?,
                revision: u["RevisionNumber"].as_u64().unwrap_or(0) as u32,
            })
        })
        .collect::<Option<Vec<_>>>()
        .context("catalog: an update without Index or UpdateID")?;
    entries.sort_by_key(|e| e.index);
    Ok(entries)
}

/// Updates in `to` that are not in `from` (all of `to` when there was no earlier scan).
pub fn changed<'a>(
    from: Option<&'a [CatalogEntry]>,
    to: &'a [CatalogEntry],
) -> impl Iterator<Item = &'a CatalogEntry> {
    to.iter().filter(move |e| from.is_none_or(|f| f.binary_search_by_key(&e.index, |x| x.index).is_err()))
}

/// What the run knows of one client at the end: the ground truth verification checks (a
/// fleet's shards send theirs to the collector, in short field names: a million of them is a
/// large post).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Truth {
    #[serde(rename = "i")]
    pub index: u64,
    /// Registration acknowledged.
    #[serde(rename = "r")]
    pub registered: bool,
    /// A location request answered (so the site knows where the client is).
    #[serde(rename = "l")]
    pub located: bool,
    /// The content version of the newest scan whose results were acknowledged.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub acked_version: Option<u32>,
    /// Open model: how many of the catalog's first updates an acknowledged Report carried.
    #[serde(rename = "f", default)]
    pub reported_first: u32,
    /// The content version of the newest scan that completed (acknowledged or not).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub scanned: Option<u32>,
}

/// Everything one arbiter's clients share.
#[derive(Debug)]
pub struct Arb {
    pub plan: Arc<Plan>,
    pub clock: SimClock,
    /// The target's transport (the site API, and every client's MP when the profile lists none).
    pub transport: Rc<Transport>,
    /// One transport per MP the profile lists, and who uses which.
    pub mps: Vec<Rc<Transport>>,
    pub chooser: Option<Arc<MpChooser>>,
    pub site: Arc<SiteInfo>,
    /// The clients' keys, when they sign (`crate::signing`).
    pub keys: Option<Arc<crate::signing::KeyPool>>,
    /// Catalogs by content version, as clients fetched them.
    pub catalogs: RefCell<HashMap<u32, CatalogView>>,
    /// Set when the run ends: timers stop, clients flush and report their truth.
    pub finishing: Cell<bool>,
    pub truths: RefCell<Vec<Truth>>,
    /// Each time a client's acknowledged "Scan completed" moved to a newer content version
    /// (what convergence is measured from).
    pub acks: RefCell<Vec<crate::convergence::Ack>>,
    /// Open model: per client, how many catalog updates an acknowledged Report carried.
    pub open_acked: RefCell<HashMap<u64, u32>>,
    /// Open model: Reports sent and not yet answered.
    pub open_in_flight: Cell<usize>,
    /// Open-model Reports refused and waiting to be sent again.
    pub open_retrying: Cell<usize>,
    /// Clients still to report their truth after finishing.
    pub outstanding: Cell<usize>,
    pub all_done: RefCell<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Arb {
    fn done_one(&self, truth: Truth) {
        self.truths.borrow_mut().push(truth);
        let left = self.outstanding.get().saturating_sub(1);
        self.outstanding.set(left);
        if left == 0
            && let Some(tx) = self.all_done.borrow_mut().take()
        {
            let _ = tx.send(());
        }
    }
}

/// A queued piece of the next Report.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// A 501 (update source scan) message.
    Scan { time: Timestamp, serial: u64, state: u8, version: u32 },
    /// The 500 messages of one scan: every update in catalog `to` not in `from`, serials from
    /// `first_serial`.
    Updates { time: Timestamp, first_serial: u64, from: Option<u32>, to: u32 },
}

/// The number of state messages a queue makes, the newest scan version among them, and the
/// newest version a "Scan completed" among them is for (0: none).
fn report_shape(arb: &Arb, queue: &[Pending]) -> (u64, Option<u32>, u32) {
    let catalogs = arb.catalogs.borrow();
    let mut count = 0u64;
    let mut newest = None;
    let mut completed = 0;
    for p in queue {
        match *p {
            Pending::Scan { state, version, .. } => {
                count += 1;
                if state == 3 {
                    completed = completed.max(version);
                }
            }
            Pending::Updates { from, to, .. } => {
                let Some(view) = catalogs.get(&to) else { continue };
                let from = from.and_then(|v| catalogs.get(&v).cloned());
                count += changed(from.as_deref().map(|v| v.as_slice()), view).count() as u64;
                newest = newest.max(Some(to));
            }
        }
    }
    (count, newest, completed)
}

/// A 500 (update detection) message: the state client `index`'s scan finds for `e`.
pub(crate) fn push_update(
    r: &mut Report,
    plan: &Plan,
    index: u64,
    e: &CatalogEntry,
    time: Timestamp,
    serial: u64,
) {
    r.update(e.id, e.revision, sim::update_state(plan, index, e.id), time, serial);
}

/// The Report of everything queued, for `client` (simulated client `index`).
fn build_report(arb: &Arb, index: u64, client: Guid, queue: &[Pending], messages: u64) -> String {
    let catalogs = arb.catalogs.borrow();
    let id = sim::identity(&arb.plan, index);
    let mut r =
        Report::begin(client, &id.netbios_name, arb.clock.timestamp(Instant::now()), messages as usize);
    for p in queue {
        match *p {
            Pending::Scan { time, serial, state, version } => {
                r.scan(arb.site.update_source_id, version, state, time, serial);
            }
            Pending::Updates { time, first_serial, from, to } => {
                let Some(view) = catalogs.get(&to) else { continue };
                let from = from.and_then(|v| catalogs.get(&v).cloned());
                for (k, e) in changed(from.as_deref().map(|v| v.as_slice()), view).enumerate() {
                    push_update(&mut r, &arb.plan, index, e, time, first_serial + k as u64);
                }
            }
        }
    }
    r.finish()
}

/// What runs after a Report's answer (`true`: the queue is empty now).
type AfterReport = Box<dyn FnOnce(&mut SimClient, &mut Context<SimClient>, bool)>;

impl Pending {
    fn time(&self) -> Timestamp {
        match *self {
            Pending::Scan { time, .. } | Pending::Updates { time, .. } => time,
        }
    }
}

/// Which of the site's MPs ([`Plan::mps`]) each client uses: among those whose boundary groups
/// hold the client's place (by the site's boundaries), else among those that list no group (or
/// all of them, when every MP lists some); one MP for the client's life, drawn from the seed so
/// that shards and runs agree.
#[derive(Debug)]
pub struct MpChooser {
    /// Per MP, the boundaries of its groups.
    boundaries: Vec<Vec<crate::verify::Boundary>>,
    /// The MPs of clients in no MP's boundary groups.
    general: Vec<usize>,
}

impl MpChooser {
    /// For `plan`'s MPs over the site (`GET /api/v1/site`); `None` when it lists none. A
    /// boundary group the site does not have is an error.
    pub fn new(plan: &Plan, site: &serde_json::Value) -> anyhow::Result<Option<MpChooser>> {
        if plan.mps.is_empty() {
            return Ok(None);
        }
        let groups = crate::verify::boundary_groups(site);
        let mut boundaries = Vec::new();
        for m in &plan.mps {
            let mut b = Vec::new();
            for g in &m.boundary_groups {
                let found =
                    groups.iter().find(|(name, _)| name.eq_ignore_ascii_case(g)).ok_or_else(|| {
                        anyhow::anyhow!("[[mp]] {}: the site has no boundary group {g:?}", m.url)
                    })?;
                b.extend(found.1.iter().cloned());
            }
            boundaries.push(b);
        }
        let mut general: Vec<usize> =
            (0..plan.mps.len()).filter(|m| plan.mps[*m].boundary_groups.is_empty()).collect();
        if general.is_empty() {
            general = (0..plan.mps.len()).collect();
        }
        Ok(Some(MpChooser { boundaries, general }))
    }

    /// Client `index`'s MP.
    pub fn choose(&self, plan: &Plan, index: u64) -> usize {
        let place = crate::verify::Place::of(plan, index);
        let local: Vec<usize> = (0..self.boundaries.len())
            .filter(|m| self.boundaries[*m].iter().any(|b| b.contains(&place)))
            .collect();
        let pool = if local.is_empty() { &self.general } else { &local };
        pool[(sim::mix(plan.seed ^ index.rotate_left(17) ^ 0x4d50_4d50) % pool.len() as u64) as usize]
    }
}

/// The run ends: flush what is queued, then report the truth.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Finish;

/// One simulated client.
#[derive(Debug)]
pub struct SimClient {
    arb: Rc<Arb>,
    index: u64,
    /// Its MP's transport.
    transport: Rc<Transport>,
    sms_id: Option<Guid>,
    /// What the client signs with, once it has an SMS ID (when the run signs).
    signer: Option<crate::signing::Signer>,
    located: bool,
    /// The next serial number.
    serial: u64,
    queue: Vec<Pending>,
    in_flight: bool,
    policy_major: Option<u32>,
    content_version: u32,
    /// Content version of the last completed scan, and of the last acknowledged one.
    scanned: Option<u32>,
    acked: Option<u32>,
    /// The newest content version whose "Scan completed" was acknowledged (0: none).
    acked_completed: u32,
    /// A scan is scheduled or running.
    scanning: bool,
    /// The scan under way: its content version and the simulated time it completes.
    completing: Option<(u32, Duration)>,
    sup: Option<String>,
    /// Simulated offset at which the client started; cycles and polls are on a grid from it.
    start: Duration,
    cycles: u32,
    polls: u32,
}

impl Actor for SimClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.at(ctx, self.start, |c, ctx, intended| c.register(ctx, intended));
    }
}

impl Handler<Finish> for SimClient {
    type Result = ();

    fn handle(&mut self, _: Finish, ctx: &mut Self::Context) {
        self.flush(ctx, 0);
    }
}

impl SimClient {
    pub fn new(arb: Rc<Arb>, index: u64) -> SimClient {
        let start = sim::start_offset(&arb.plan, index);
        let transport = match &arb.chooser {
            Some(c) => Rc::clone(&arb.mps[c.choose(&arb.plan, index)]),
            None => Rc::clone(&arb.transport),
        };
        transport.users.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SimClient {
            arb,
            index,
            transport,
            sms_id: None,
            signer: None,
            located: false,
            serial: 1,
            queue: Vec::new(),
            in_flight: false,
            policy_major: None,
            content_version: 0,
            scanned: None,
            acked: None,
            acked_completed: 0,
            scanning: false,
            completing: None,
            sup: None,
            start,
            cycles: 0,
            polls: 0,
        }
    }

    /// Runs `f` at simulated offset `sim` (now, if that has passed), unless the run is ending.
    fn at(
        &self,
        ctx: &mut Context<Self>,
        sim: Duration,
        f: impl FnOnce(&mut Self, &mut Context<Self>, Instant) + 'static,
    ) {
        let intended = self.arb.clock.real_at(sim);
        let delay = intended.saturating_duration_since(Instant::now());
        ctx.run_later(delay, move |c, ctx| {
            if !c.arb.finishing.get() {
                f(c, ctx, intended);
            }
        });
    }

    fn sim_now(&self) -> Duration {
        self.arb.clock.sim_elapsed(Instant::now())
    }

    /// Awaits `fut` on the actor's context, then calls `then` with the actor and the result.
    fn spawn<R: 'static>(
        &self,
        ctx: &mut Context<Self>,
        fut: impl Future<Output = R> + 'static,
        then: impl FnOnce(&mut Self, &mut Context<Self>, R) + 'static,
    ) {
        ctx.spawn(actix::fut::wrap_future::<_, Self>(fut).map(move |r, c, ctx| then(c, ctx, r)));
    }

    fn header(&self, endpoint: &str) -> MsgHeader {
        let id = sim::identity(&self.arb.plan, self.index);
        let message = Guid(u128::from(sim::mix(self.index ^ self.serial)) << 64 | u128::from(self.serial));
        messages::header(message, self.sms_id, &id.netbios_name, endpoint)
    }

    fn register(&mut self, ctx: &mut Context<Self>, intended: Instant) {
        let id = sim::identity(&self.arb.plan, self.index);
        let request = ClientRegistrationRequest {
            request_type: "Registration".into(),
            timestamp: self.arb.clock.timestamp(intended).to_rfc3339(),
            agent_identity: "CCMSetup.exe".into(),
            agent_version: "5.00.7958.1000".into(),
            properties: vec![
                ("Netbios Name".into(), id.netbios_name.clone()),
                ("FQ Name".into(), id.fqdn.clone()),
                ("Locale ID".into(), "1033".into()),
                ("InternetFlag".into(), if id.on_internet { "1" } else { "0" }.into()),
            ],
            ..ClientRegistrationRequest::default()
        };
        let (transport, header) = (Rc::clone(&self.transport), self.header("MP_ClientRegistration"));
        // Signed with the client's key, its certificate carried (when the run signs).
        let keys = self.arb.keys.clone();
        let index = self.index;
        let xml = move || match keys {
            Some(pool) => {
                let key = pool.for_client(index);
                let mut request =
                    ClientRegistrationRequest { signing_certificate: key.certificate_hex.clone(), ..request };
                request.to_signed_xml(|data| key.key.sign(data, pool.padding))
            }
            None => request.to_xml(),
        };
        let fut = async move { transport.mp(Kind::Registration, intended, index, header, xml).await };
        self.spawn(ctx, fut, move |c, ctx, reply| {
            match reply.map(|xml| ClientRegistrationResponse::parse(&xml).map_err(|e| e.to_string())) {
                Ok(Ok(response)) => {
                    c.sms_id = Some(response.sms_id);
                    if let Some(pool) = &c.arb.keys {
                        let machine = sim::identity(&c.arb.plan, c.index).netbios_name;
                        let source_id = format!("GUID:{}", response.sms_id);
                        c.signer = Some(crate::signing::Signer::new(pool, c.index, &source_id, &machine));
                    }
                    // The schedule follows from the simulated time the registration was due,
                    // not from when its answer came: runs (and shards) stay comparable.
                    let origin = c.arb.clock.sim_elapsed(intended);
                    c.poll(ctx, Instant::now(), origin);
                    c.next_cycle(ctx);
                    c.polls = ((origin.saturating_sub(c.start)).as_secs_f64()
                        / c.arb.plan.policy_poll.as_secs_f64()) as u32;
                    c.next_poll(ctx);
                }
                // As a client does: try again a little later.
                _ => {
                    let retry = c.sim_now() + Duration::from_secs(60);
                    c.at(ctx, retry, |c, ctx, intended| c.register(ctx, intended));
                }
            }
        });
    }

    fn next_poll(&mut self, ctx: &mut Context<Self>) {
        self.polls += 1;
        let plan = &self.arb.plan;
        let at = self.start + sim::poll_offset(plan, self.index) + plan.policy_poll * self.polls;
        self.at(ctx, at, move |c, ctx, intended| {
            c.poll(ctx, intended, at);
            c.next_poll(ctx);
        });
    }

    fn next_cycle(&mut self, ctx: &mut Context<Self>) {
        self.cycles += 1;
        let plan = &self.arb.plan;
        let at = self.start + sim::cycle_offset(plan, self.index) + plan.reporting_cycle * self.cycles;
        self.at(ctx, at, move |c, ctx, intended| {
            // A scan due by now completes first, whichever timer fired first: what a cycle
            // sends depends on simulated time only, so runs and shards add up exactly.
            c.complete_due(ctx, at);
            c.report(ctx, intended, Some(at), None);
            c.next_cycle(ctx);
        });
    }

    /// A policy poll; `origin` is the simulated time it was due.
    fn poll(&mut self, ctx: &mut Context<Self>, intended: Instant, origin: Duration) {
        let id = sim::identity(&self.arb.plan, self.index);
        let mut request =
            RequestAssignments { ack: true, request_type: "Full".into(), ..RequestAssignments::default() };
        request.requester.identification.client_id =
            self.sms_id.map(|g| format!("GUID:{g}")).unwrap_or_default();
        request.requester.identification.fqdn = id.fqdn;
        request.requester.identification.netbios_name = id.netbios_name;
        request.requester.policy_source = format!("SMS:{}", self.arb.site.site_code);
        request.requester.resource_type = "Machine".into();
        let (transport, header) = (Rc::clone(&self.transport), self.header("MP_PolicyManager"));
        let (signer, who) = (self.signer.clone(), self.index);
        let fut = async move {
            transport
                .mp_signed(Kind::PolicyAssignments, intended, who, header, signer, move || request.to_xml())
                .await
        };
        self.spawn(ctx, fut, move |c, ctx, reply| {
            let Ok(Ok(reply)) = reply.map(|xml| ReplyAssignments::parse(&xml)) else { return };
            let Some(policy) = reply
                .assignments
                .iter()
                .find(|a| a.policy_category == "UpdateSource")
                .or(reply.assignments.first())
            else {
                return;
            };
            let major = policy.policy_version.split('.').next().and_then(|m| m.parse::<u32>().ok());
            if major.is_none() || major == c.policy_major {
                return;
            }
            let path =
                policy.location.split_once("<mp>").map_or(policy.location.as_str(), |(_, p)| p).to_owned();
            c.policy_body(ctx, Instant::now(), path, major.unwrap_or(0), origin);
        });
    }

    fn policy_body(
        &mut self,
        ctx: &mut Context<Self>,
        intended: Instant,
        path: String,
        major: u32,
        origin: Duration,
    ) {
        let (transport, who) = (Rc::clone(&self.transport), self.index);
        let fut = async move { transport.get(Kind::PolicyBody, intended, who, &path).await };
        self.spawn(ctx, fut, move |c, ctx, body| {
            let Ok(body) = body else { return }; // the next poll tries again
            let Ok(text) = protocol::utf16::decode(&body) else { return };
            let Ok(policy) = UpdateSourcePolicy::parse(&text) else { return };
            c.policy_major = Some(major);
            c.content_version = policy.content_version;
            if !c.scanning {
                c.scanning = true;
                let at = origin + sim::scan_delay(&c.arb.plan, c.index, u64::from(major));
                c.at(ctx, at, move |c, ctx, intended| c.scan(ctx, intended, at));
            }
        });
    }

    /// A scan, due at simulated time `origin`.
    fn scan(&mut self, ctx: &mut Context<Self>, intended: Instant, origin: Duration) {
        let version = self.content_version;
        self.queue_scan_state(2, version, origin); // Scan is running
        let id = sim::identity(&self.arb.plan, self.index);
        let plan = &self.arb.plan;
        let subnet = plan.subnets[id.subnet].network.to_string();
        let request = WsusLocationRequest {
            content_id: self.arb.site.update_source_id,
            content_version: version,
            site_code: self.arb.site.site_code.clone(),
            on_internet: id.on_internet,
            ad_site: plan.ad_sites[id.ad_site].clone(),
            forest: "CONTOSO.COM".into(),
            domain: "CONTOSO.COM".into(),
            ip_addresses: vec![IpAddressInfo { subnet, address: id.address.to_string() }],
        };
        let (transport, header) = (Rc::clone(&self.transport), self.header("MP_LocationManager"));
        let who = self.index;
        let fut = async move {
            transport.mp(Kind::WsusLocation, intended, who, header, move || request.to_xml()).await
        };
        self.spawn(ctx, fut, move |c, ctx, reply| {
            let Ok(Ok(reply)) = reply.map(|xml| WsusLocationReply::parse(&xml)) else {
                return c.scan_failed(ctx, version);
            };
            c.located = true;
            let records: Vec<_> = reply.records().collect();
            if records.is_empty() {
                return c.scan_failed(ctx, version);
            }
            // Affinity with the last SUP that worked; otherwise a pick spread over the list.
            let pick = c
                .sup
                .as_ref()
                .and_then(|s| records.iter().position(|r| &r.server_name == s))
                .unwrap_or_else(|| sim::sup_choice(&c.arb.plan, c.index, records.len()));
            let record = records[pick];
            c.sup = Some(record.server_name.clone());
            let path = match record
                .wsus_url
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            {
                Some(p) => format!("{p}/catalog?version={version}"),
                None => format!("/wsus/{}/catalog?version={version}", record.server_name),
            };
            c.catalog(ctx, Instant::now(), path, version, origin);
        });
    }

    fn catalog(
        &mut self,
        ctx: &mut Context<Self>,
        intended: Instant,
        path: String,
        version: u32,
        origin: Duration,
    ) {
        let (transport, who) = (Rc::clone(&self.transport), self.index);
        let fut = async move { transport.get(Kind::Catalog, intended, who, &path).await };
        self.spawn(ctx, fut, move |c, ctx, body| {
            let known = c.arb.catalogs.borrow().contains_key(&version);
            let parsed = match body {
                Ok(_) if known => true,
                Ok(body) => parse_catalog(&body)
                    .map(|entries| c.arb.catalogs.borrow_mut().insert(version, Rc::new(entries)))
                    .is_ok(),
                Err(_) => false,
            };
            if !parsed {
                return c.scan_failed(ctx, version);
            }
            let done = origin + c.arb.plan.scan_duration;
            c.completing = Some((version, done));
            c.at(ctx, done, move |c, ctx, _| c.complete_due(ctx, done));
        });
    }

    /// Completes the scan under way if it is due by simulated time `upto`.
    fn complete_due(&mut self, ctx: &mut Context<Self>, upto: Duration) {
        if let Some((version, done)) = self.completing
            && done <= upto
        {
            self.completing = None;
            self.scan_completed(ctx, version, done);
        }
    }

    /// The scan's results: 500 messages for what changed, then 501 "completed".
    fn scan_completed(&mut self, ctx: &mut Context<Self>, version: u32, origin: Duration) {
        let count = {
            let catalogs = self.arb.catalogs.borrow();
            let from = self.scanned.and_then(|v| catalogs.get(&v).cloned());
            catalogs.get(&version).map_or(0, |to| changed(from.as_deref().map(|v| v.as_slice()), to).count())
        };
        let time = self.stamp(origin);
        self.queue.push(Pending::Updates {
            time,
            first_serial: self.serial,
            from: self.scanned,
            to: version,
        });
        self.serial += count as u64;
        self.queue_scan_state(3, version, origin); // Scan completed
        self.scanned = Some(version);
        self.scanning = false;
        // A newer policy arrived while scanning: scan again for it.
        if self.content_version > version {
            self.scanning = true;
            let at = origin + sim::scan_delay(&self.arb.plan, self.index, u64::from(self.content_version));
            self.at(ctx, at, move |c, ctx, intended| c.scan(ctx, intended, at));
        }
    }

    /// A retryable scan failure (no SUP answered): 501 "pending retry", again in 30 minutes.
    fn scan_failed(&mut self, ctx: &mut Context<Self>, version: u32) {
        let now = self.sim_now();
        self.queue_scan_state(4, version, now);
        let at = now + Duration::from_secs(1800);
        self.at(ctx, at, move |c, ctx, intended| c.scan(ctx, intended, at));
    }

    /// The simulated timestamp at simulated offset `sim`.
    fn stamp(&self, sim: Duration) -> Timestamp {
        Timestamp(self.arb.clock.sim_start.0 + sim.as_micros() as i64)
    }

    fn queue_scan_state(&mut self, state: u8, version: u32, at: Duration) {
        let time = self.stamp(at);
        self.queue.push(Pending::Scan { time, serial: self.serial, state, version });
        self.serial += 1;
    }

    /// A reporting cycle: what is queued (up to simulated time `upto`, if given) as one Report.
    /// `then` runs after the answer.
    fn report(
        &mut self,
        ctx: &mut Context<Self>,
        intended: Instant,
        upto: Option<Duration>,
        then: Option<AfterReport>,
    ) {
        let cutoff = upto.map(|t| self.stamp(t));
        let sent = self.queue.iter().take_while(|p| cutoff.is_none_or(|c| p.time() <= c)).count();
        if sent == 0 || self.in_flight || self.sms_id.is_none() {
            if let Some(then) = then {
                then(self, ctx, self.queue.is_empty());
            }
            return;
        }
        self.in_flight = true;
        let (messages, newest, completed) = report_shape(&self.arb, &self.queue[..sent]);
        let (transport, header) = (Rc::clone(&self.transport), self.header(messages::RELAY));
        // The Report is written once a connection is free: waiting sends hold only the queue.
        let (arb, index, client, queue) =
            (Rc::clone(&self.arb), self.index, self.sms_id.unwrap_or(Guid(0)), self.queue[..sent].to_vec());
        let xml = move || build_report(&arb, index, client, &queue, messages);
        let signer = self.signer.clone();
        let fut =
            async move { transport.mp_signed(Kind::StateReport, intended, index, header, signer, xml).await };
        self.spawn(ctx, fut, move |c, ctx, reply: Result<String, Failure>| {
            c.in_flight = false;
            let ok = reply.is_ok();
            metrics::messages(messages, ok);
            if ok {
                c.queue.drain(..sent);
                c.acked = c.acked.max(newest);
                if completed > c.acked_completed {
                    let at = c.arb.clock.sim_elapsed(Instant::now()).as_secs_f64();
                    let ack = crate::convergence::Ack {
                        index: c.index,
                        from: c.acked_completed,
                        to: completed,
                        at,
                    };
                    c.arb.acks.borrow_mut().push(ack);
                    c.acked_completed = completed;
                }
            }
            if let Some(then) = then {
                then(c, ctx, ok && c.queue.is_empty());
            }
        });
    }

    /// The run ends: send what is queued (a few tries), then report the truth.
    fn flush(&mut self, ctx: &mut Context<Self>, tries: u32) {
        if self.in_flight {
            // A send is under way; look again shortly.
            ctx.run_later(Duration::from_millis(50), move |c, ctx| c.flush(ctx, tries));
            return;
        }
        let then = move |c: &mut Self, ctx: &mut Context<Self>, done: bool| {
            if done || tries >= 5 {
                let truth = Truth {
                    index: c.index,
                    registered: c.sms_id.is_some(),
                    located: c.located,
                    acked_version: c.acked,
                    reported_first: 0,
                    scanned: c.scanned,
                };
                c.arb.done_one(truth);
                ctx.stop();
            } else {
                ctx.run_later(Duration::from_millis(200 << tries), move |c, ctx| c.flush(ctx, tries + 1));
            }
        };
        if tries == 0 {
            // Scans due within the run complete before the last Report.
            let end = self.arb.plan.duration;
            self.complete_due(ctx, end);
        }
        self.report(ctx, Instant::now(), None, Some(Box::new(then)));
    }
}
