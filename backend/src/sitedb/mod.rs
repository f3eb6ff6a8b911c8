//! The site database (`serve --database postgres://...`): PostgreSQL with views named and shaped
//! as the product's ([`schema`]), kept current beside the in-memory store, which stays the truth
//! and the fast path.
//!
//! - **Changes** come from the store's own change tracking: each checkpoint frame, once durable,
//!   is handed to the [`Mirror`] ([`crate::statesys::checkpoint::FrameSink`]), which queues it
//!   without blocking StateSys. Its thread (with its own runtime and connection) decodes the
//!   frames, copies the changed clients and status rows into staging tables with binary `COPY`
//!   ([`copy`]) and merges them, one transaction per batch.
//! - **A full load** (the store visited one shard at a time, rows streamed by `COPY`) fills the
//!   database when this process starts, again whenever the queue outgrew its budget while the
//!   database was away (`behind`), and when the database server lost the (unlogged) tables in a
//!   crash (the load's marker row went with them). Frames that arrive meanwhile are applied after it; replaying a
//!   change the load already carried sets the same values again.
//! - **The catalog, update groups and deployments** are rewritten when a sync changes the site;
//!   **the summaries** after each summarization that published new views.
//! - **A database that is down or slow** never blocks ingestion: frames wait in the queue (up to
//!   [`Mirror::max_queued`] bytes, then it falls back to a full load), a batch that fails is put
//!   back, and the thread reconnects every second. Its lag (how long the oldest durable change
//!   not yet in the database has waited) is a gauge in `/metrics` and the status API.
//! - **One backend per database**: the mirror holds an advisory lock while connected; a
//!   database written by another site is refused.

pub mod copy;
pub mod schema;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use protocol::{Guid, GuidStyle};
use tokio_postgres::{Client as Pg, NoTls};

use crate::counters::Reading;
use crate::logs::{ComponentLog, Severity};
use crate::site::live::LiveSite;
use crate::site::{Collection, Site};
use crate::statesys::checkpoint::{Entries, FrameSink, read_frame};
use crate::statesys::state::{Client, NO_TIME, UpdateState};
use crate::statesys::store::Store;
use crate::statesys::tasks::{Summarizer, Task, Views};
use copy::CopyRows;
use schema::{FIRST_ID, GROUP_CI_BASE};

/// The advisory lock a mirroring backend holds ("SUMS").
const LOCK_KEY: i64 = 0x5355_4D53;

/// A COPY chunk is sent once it holds this many bytes.
const CHUNK_BYTES: usize = 4 << 20;

/// Frames waiting for the database.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<(Instant, Bytes)>,
    bytes: usize,
    /// Frames were dropped (the queue outgrew its budget): a full load is due. When it began.
    behind: Option<Instant>,
    /// The oldest frame of the batch being applied.
    applying: Option<Instant>,
}

/// What the mirror has done, for the status API and metrics.
#[derive(Debug, Default)]
struct Stats {
    connected: AtomicBool,
    frames: AtomicU64,
    rows: AtomicU64,
    full_loads: AtomicU64,
    failures: AtomicU64,
    /// µs the last full load took.
    full_load_micros: AtomicU64,
}

/// Keeps the database current; see the module docs.
#[derive(Debug)]
pub struct Mirror {
    url: String,
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Stats,
    stop: AtomicBool,
    /// The store, once the thread started: whether it holds changes no frame carries yet.
    store: std::sync::OnceLock<Arc<Store>>,
    /// Bytes of frames the queue may hold before it drops them for a full load.
    pub max_queued: usize,
}

/// What the mirror's thread reads from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub store: Arc<Store>,
    /// StateSys's counters: the store is not the site's until it has loaded.
    pub statesys: Arc<crate::statesys::service::Counters>,
    pub site: Arc<LiveSite>,
    pub summarizer: Arc<Summarizer>,
    pub log: Arc<ComponentLog>,
}

fn pg_error(what: &str, e: &tokio_postgres::Error) -> io::Error {
    // tokio-postgres's Display for a server error is terse; its source says what the server said.
    let detail = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    io::Error::other(format!("{what}: {e}{detail}"))
}

impl FrameSink for Mirror {
    fn frame(&self, body: Bytes) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.behind.is_some() {
            return;
        }
        if q.bytes.saturating_add(body.len()) > self.max_queued {
            // The database has been away too long: a full load will carry these changes.
            q.frames.clear();
            q.bytes = 0;
            q.behind = Some(Instant::now());
        } else {
            q.bytes += body.len();
            q.frames.push_back((Instant::now(), body));
        }
        drop(q);
        self.wake.notify_one();
    }
}

impl Mirror {
    /// Connects to `url` and makes (or checks, or rebuilds an older version of) the schema for
    /// site `site_code`: an error names what failed (the URL, the credentials, the server's
    /// answer, another site's database, another backend holding it).
    pub async fn open(url: &str, site_code: &str) -> io::Result<Arc<Mirror>> {
        let (pg, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| pg_error(&format!("cannot connect to the site database {}", redact(url)), &e))?;
        let task = tokio::spawn(connection);
        let checked = take_database(&pg, url, site_code).await;
        drop(pg);
        let _ = task.await;
        checked?;
        Ok(Arc::new(Mirror {
            url: url.to_owned(),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            store: std::sync::OnceLock::new(),
            max_queued: 512 << 20,
        }))
    }

    /// Starts the thread that keeps the database current.
    pub fn start(self: &Arc<Self>, sources: Sources) -> io::Result<JoinHandle<()>> {
        let _ = self.store.set(Arc::clone(&sources.store));
        let mirror = Arc::clone(self);
        std::thread::Builder::new().name("sitedb".into()).spawn(move || mirror.run(&sources))
    }

    /// Asks the thread to apply what is queued and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    /// How long the oldest durable change not yet in the database has waited.
    pub fn lag(&self) -> Duration {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        [q.behind, q.applying, q.frames.front().map(|f| f.0)]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Whether the database holds everything the store does: connected, loaded, nothing queued
    /// or being applied, and no change in the store that a checkpoint has not framed yet.
    pub fn caught_up(&self) -> bool {
        let idle = {
            let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.frames.is_empty() && q.applying.is_none() && q.behind.is_none()
        };
        idle && self.stats.connected.load(Ordering::Relaxed)
            && self.stats.full_loads.load(Ordering::Relaxed) > 0
            && self.store.get().is_some_and(|s| !s.has_unsaved())
    }

    pub fn readings(&self, out: &mut Vec<Reading>) {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).bytes as u64;
        out.extend([
            Reading::flag(&["Database", "CaughtUp"], "sumstorm_sitedb_caught_up", self.caught_up()),
            Reading::flag(
                &["Database", "Connected"],
                "sumstorm_sitedb_connected",
                self.stats.connected.load(Ordering::Relaxed),
            ),
            Reading::seconds(
                &["Database", "LagSeconds"],
                "sumstorm_sitedb_lag_seconds",
                self.lag().as_micros() as u64,
            ),
            Reading::gauge(&["Database", "QueuedBytes"], "sumstorm_sitedb_queued_bytes", queued),
            Reading::counter(&["Database", "Frames"], "sumstorm_sitedb_frames_total", n(&self.stats.frames)),
            Reading::counter(&["Database", "Rows"], "sumstorm_sitedb_rows_total", n(&self.stats.rows)),
            Reading::counter(
                &["Database", "FullLoads"],
                "sumstorm_sitedb_full_loads_total",
                n(&self.stats.full_loads),
            ),
            Reading::seconds(
                &["Database", "LastFullLoadSeconds"],
                "sumstorm_sitedb_last_full_load_seconds",
                n(&self.stats.full_load_micros),
            ),
            Reading::counter(
                &["Database", "Failures"],
                "sumstorm_sitedb_failures_total",
                n(&self.stats.failures),
            ),
        ]);
    }

    fn run(self: Arc<Self>, sources: &Sources) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                sources.log.log(Severity::Error, &format!("Site database: cannot start its runtime: {e}"));
                return;
            }
        };
        runtime.block_on(async {
            let mut loaded = false;
            let mut reported = false;
            loop {
                match self.session(sources, &mut loaded).await {
                    Ok(()) => return,
                    Err(e) => {
                        self.stats.connected.store(false, Ordering::Relaxed);
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        if !reported {
                            sources.log.log(
                                Severity::Error,
                                &format!(
                                    "Site database: {e}; retrying every second (changes are kept meanwhile)."
                                ),
                            );
                        }
                        reported = true;
                    }
                }
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// One connection's life: until the thread is stopped (`Ok`) or the database fails (`Err`).
    async fn session(&self, sources: &Sources, loaded: &mut bool) -> io::Result<()> {
        let (pg, connection) =
            tokio_postgres::connect(&self.url, NoTls).await.map_err(|e| pg_error("cannot connect", &e))?;
        let connection = tokio::spawn(connection);
        let result = async {
            let site_code = sources.site.read().code.clone();
            take_database(&pg, &self.url, &site_code).await?;
            pg.batch_execute(
                "SET temp_buffers = '256MB';
                 CREATE TEMP TABLE IF NOT EXISTS stage_client (LIKE sumstorm_client);
                 CREATE TEMP TABLE IF NOT EXISTS stage_status (known boolean NOT NULL, LIKE sumstorm_update_status);",
            )
            .await
            .map_err(|e| pg_error("making staging tables", &e))?;
            let mut ids = Ids::load(&pg).await?;
            // A database server that recovered from a crash has emptied the unlogged tables.
            let marked: i64 = pg
                .query_one("SELECT count(*) FROM sumstorm_mirror", &[])
                .await
                .map_err(|e| pg_error("reading the load marker", &e))?
                .get(0);
            if marked == 0 {
                *loaded = false;
            }
            self.stats.connected.store(true, Ordering::Relaxed);
            let mut written = Written::default();
            loop {
                written.site(&pg, sources).await?;
                let behind = self.queue.lock().unwrap_or_else(|e| e.into_inner()).behind.is_some();
                if sources.statesys.loading.load(Ordering::Acquire) {
                    // Frames wait (and are covered by the load) until the store is the site's.
                    if self.stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if !*loaded || behind {
                    self.full_load(&pg, sources, &mut ids).await?;
                    *loaded = true;
                    written.views = None;
                }
                let batch = self.take(Duration::from_millis(200));
                if !batch.is_empty() {
                    if let Err(e) = self.apply(&pg, &batch, &mut ids).await {
                        self.put_back(batch);
                        return Err(e);
                    }
                    self.queue.lock().unwrap_or_else(|e| e.into_inner()).applying = None;
                }
                written.summaries(&pg, sources).await?;
                if self.stop.load(Ordering::Acquire) && self.queue.lock().unwrap_or_else(|e| e.into_inner()).frames.is_empty()
                {
                    return Ok(());
                }
            }
        }
        .await;
        drop(pg);
        let _ = connection.await;
        result
    }

    /// The queued frames (at most 16 MiB of them, or one larger), waiting up to `wait` for one.
    fn take(&self, wait: Duration) -> Vec<(Instant, Bytes)> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.frames.is_empty() && !self.stop.load(Ordering::Acquire) {
            q = self.wake.wait_timeout(q, wait).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(f) = q.frames.front() {
            if !batch.is_empty() && bytes + f.1.len() > 16 << 20 {
                break;
            }
            bytes += f.1.len();
            batch.extend(q.frames.pop_front());
        }
        q.bytes -= bytes;
        q.applying = batch.first().map(|f| f.0);
        batch
    }

    /// A batch that failed goes back to the front of the queue.
    fn put_back(&self, batch: Vec<(Instant, Bytes)>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.applying = None;
        if q.behind.is_some() {
            return;
        }
        for f in batch.into_iter().rev() {
            q.bytes += f.1.len();
            q.frames.push_front(f);
        }
    }

    /// Applies frames in one transaction: the clients they name, and their status entries (the
    /// last change of each wins; an entry without a state removes the row).
    async fn apply(&self, pg: &Pg, batch: &[(Instant, Bytes)], ids: &mut Ids) -> io::Result<()> {
        let mut clients: HashMap<Guid, Client> = HashMap::new();
        let mut changes: Vec<(i32, i32, Option<UpdateState>)> = Vec::new();
        // A client the database has never had has no rows: its states are copied in directly,
        // without the merge's conflict checks.
        let mut fresh = CopyRows::new();
        for (_, body) in batch {
            read_frame(body, |c, entries| {
                let (rid, new) = ids.get_new(c.id);
                let mut push = |index: u32, u: &UpdateState| {
                    let ci = FIRST_ID.saturating_add(index as i32);
                    if !new {
                        changes.push((rid, ci, u.is_known().then_some(*u)));
                    } else if u.is_known() {
                        fresh.row(6).int4(rid).int4(ci);
                        status_row_values(&mut fresh, u);
                    }
                };
                match entries {
                    Entries::Dense(row) => row.iter().enumerate().for_each(|(i, u)| push(i as u32, u)),
                    Entries::Sparse(list) => list.iter().for_each(|(i, u)| push(*i, u)),
                }
                clients.insert(c.id, c.clone());
            })
            .map_err(|e| io::Error::other(format!("a checkpoint frame does not read: {e}")))?;
        }
        // The last change of each (client, update) wins (one frame names each once).
        if batch.len() > 1 {
            changes.reverse();
            changes.sort_by_key(|&(rid, ci, _)| (rid, ci));
            changes.dedup_by_key(|&mut (rid, ci, _)| (rid, ci));
        }
        let mut client_rows = CopyRows::new();
        for c in clients.values() {
            client_row(&mut client_rows, ids.get(c.id), c);
        }
        let mut status_rows = CopyRows::new();
        for &(rid, ci, u) in &changes {
            status_rows.row(7).boolean(u.is_some()).int4(rid).int4(ci);
            match u {
                Some(u) => status_row_values(&mut status_rows, &u),
                None => {
                    status_rows.int2(0).null().null().int8(0);
                }
            }
        }
        pg.batch_execute("BEGIN; TRUNCATE stage_client, stage_status")
            .await
            .map_err(|e| pg_error("staging", &e))?;
        let rows = fresh.rows() + changes.len() as u64;
        let done = async {
            send_copy(pg, "COPY stage_client FROM STDIN (FORMAT binary)", client_rows).await?;
            send_copy(pg, "COPY sumstorm_update_status FROM STDIN (FORMAT binary)", fresh).await?;
            send_copy(pg, "COPY stage_status FROM STDIN (FORMAT binary)", status_rows).await?;
            pg.batch_execute(&format!(
                "{UPSERT_CLIENTS};
                 DELETE FROM sumstorm_update_status s USING stage_status t
                  WHERE NOT t.known AND s.resource_id = t.resource_id AND s.ci_id = t.ci_id;
                 INSERT INTO sumstorm_update_status
                 SELECT resource_id, ci_id, status, last_status_check_time, last_status_change_time, serial
                   FROM stage_status WHERE known
                 ON CONFLICT (resource_id, ci_id) DO UPDATE SET status = EXCLUDED.status,
                    last_status_check_time = EXCLUDED.last_status_check_time,
                    last_status_change_time = EXCLUDED.last_status_change_time, serial = EXCLUDED.serial;
                 COMMIT"
            ))
            .await
            .map_err(|e| pg_error("merging a batch", &e))
        }
        .await;
        if done.is_err() {
            let _ = pg.batch_execute("ROLLBACK").await;
        }
        done?;
        self.stats.frames.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.rows.fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Every client and status row from the store, streamed shard by shard.
    async fn full_load(&self, pg: &Pg, sources: &Sources, ids: &mut Ids) -> io::Result<()> {
        let started = Instant::now();
        {
            // What is queued is in the store already: the load carries it.
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.frames.clear();
            q.bytes = 0;
            q.behind = None;
        }
        let store = &sources.store;
        let load = async {
            pg.batch_execute("BEGIN; TRUNCATE stage_client").await.map_err(|e| pg_error("staging", &e))?;
            let mut rows = CopyRows::new();
            let sink = pg
                .copy_in::<_, Bytes>("COPY stage_client FROM STDIN (FORMAT binary)")
                .await
                .map_err(|e| pg_error("COPY", &e))?;
            let mut sink = std::pin::pin!(sink);
            for shard in 0..store.shard_count() {
                store.for_each_in_shard(shard, |c, _| client_row(&mut rows, ids.get(c.id), c));
                if rows.pending() >= CHUNK_BYTES {
                    sink.send(rows.take()).await.map_err(|e| pg_error("COPY", &e))?;
                }
            }
            sink.send(rows.finish()).await.map_err(|e| pg_error("COPY", &e))?;
            sink.as_mut().finish().await.map_err(|e| pg_error("COPY", &e))?;
            pg.batch_execute(&format!(
                "{UPSERT_CLIENTS};
                 TRUNCATE sumstorm_update_status;
                 ALTER TABLE sumstorm_update_status DROP CONSTRAINT sumstorm_update_status_pkey;
                 SET LOCAL maintenance_work_mem = '256MB'"
            ))
            .await
            .map_err(|e| pg_error("loading clients", &e))?;
            let sink = pg
                .copy_in::<_, Bytes>("COPY sumstorm_update_status FROM STDIN (FORMAT binary)")
                .await
                .map_err(|e| pg_error("COPY", &e))?;
            let mut sink = std::pin::pin!(sink);
            let mut rows = CopyRows::new();
            // Clients that appear between the two passes.
            let mut new_clients = Vec::new();
            for shard in 0..store.shard_count() {
                store.for_each_in_shard(shard, |c, row| {
                    let (rid, new) = ids.get_new(c.id);
                    if new {
                        new_clients.push(c.clone());
                    }
                    for (i, u) in row.iter().enumerate().filter(|(_, u)| u.is_known()) {
                        rows.row(6).int4(rid).int4(FIRST_ID.saturating_add(i as i32));
                        status_row_values(&mut rows, u);
                    }
                });
                if rows.pending() >= CHUNK_BYTES {
                    sink.send(rows.take()).await.map_err(|e| pg_error("COPY", &e))?;
                }
            }
            let count = rows.rows();
            sink.send(rows.finish()).await.map_err(|e| pg_error("COPY", &e))?;
            sink.as_mut().finish().await.map_err(|e| pg_error("COPY", &e))?;
            if !new_clients.is_empty() {
                let mut rows = CopyRows::new();
                for c in &new_clients {
                    client_row(&mut rows, ids.get(c.id), c);
                }
                pg.batch_execute("TRUNCATE stage_client").await.map_err(|e| pg_error("staging", &e))?;
                send_copy(pg, "COPY stage_client FROM STDIN (FORMAT binary)", rows).await?;
                pg.batch_execute(UPSERT_CLIENTS).await.map_err(|e| pg_error("loading clients", &e))?;
            }
            pg.batch_execute(
                "ALTER TABLE sumstorm_update_status ADD CONSTRAINT sumstorm_update_status_pkey
                     PRIMARY KEY (resource_id, ci_id);
                 TRUNCATE sumstorm_mirror;
                 INSERT INTO sumstorm_mirror VALUES (now());
                 COMMIT;
                 ANALYZE sumstorm_client, sumstorm_update_status",
            )
            .await
            .map_err(|e| pg_error("indexing the status rows", &e))?;
            Ok::<u64, io::Error>(count)
        }
        .await;
        let rows = match load {
            Ok(rows) => rows,
            Err(e) => {
                let _ = pg.batch_execute("ROLLBACK").await;
                // The next session loads again.
                self.queue.lock().unwrap_or_else(|e| e.into_inner()).behind.get_or_insert(started);
                return Err(e);
            }
        };
        self.stats.full_loads.fetch_add(1, Ordering::Relaxed);
        self.stats.rows.fetch_add(rows, Ordering::Relaxed);
        self.stats.full_load_micros.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        sources.log.info(&format!(
            "Site database: loaded {} clients and {rows} status rows in {:.1} seconds.",
            store.clients(),
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// Merges `stage_client` into the clients (a client keeps its `ResourceID`).
const UPSERT_CLIENTS: &str = "INSERT INTO sumstorm_client SELECT * FROM stage_client
 ON CONFLICT (resource_id) DO UPDATE SET netbios_name = EXCLUDED.netbios_name,
    ad_site = EXCLUDED.ad_site, last_seen = EXCLUDED.last_seen, retired = EXCLUDED.retired,
    scan_state = EXCLUDED.scan_state, scan_time = EXCLUDED.scan_time,
    scan_content_version = EXCLUDED.scan_content_version";

/// The database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn time(t: i64) -> Option<i64> {
    (t != NO_TIME).then_some(t)
}

/// A `sumstorm_client` row.
fn client_row(rows: &mut CopyRows, rid: i32, c: &Client) {
    rows.row(9).int4(rid).uuid(c.id.0).text(&c.netbios_name);
    match &c.location {
        Some(l) => rows.text(&l.ad_site),
        None => rows.null(),
    };
    rows.timestamp(time(c.last_seen)).boolean(c.retired);
    match c.scan {
        Some(s) => rows.int2(i16::from(s.state)).timestamp(time(s.time)).int4(s.content_version as i32),
        None => rows.null().null().null(),
    };
}

/// A status row's values after its keys: status, check time, change time, serial.
fn status_row_values(rows: &mut CopyRows, u: &UpdateState) {
    rows.int2(i16::from(u.state))
        .timestamp(time(u.time))
        .timestamp(time(u.changed))
        .int8(i64::from(u.serial));
}

/// Sends one whole COPY stream.
async fn send_copy(pg: &Pg, statement: &str, rows: CopyRows) -> io::Result<u64> {
    let sink = pg.copy_in::<_, Bytes>(statement).await.map_err(|e| pg_error("COPY", &e))?;
    let mut sink = std::pin::pin!(sink);
    sink.send(rows.finish()).await.map_err(|e| pg_error("COPY", &e))?;
    sink.as_mut().finish().await.map_err(|e| pg_error("COPY", &e))
}

/// One transaction: `begin` (which opens it and empties the tables), then each table's rows by
/// COPY, then the commit; rolled back on any failure.
async fn replace_tables<const N: usize>(
    pg: &Pg,
    begin: &str,
    copies: [(&str, CopyRows); N],
    what: &str,
) -> io::Result<()> {
    pg.batch_execute(begin).await.map_err(|e| pg_error(what, &e))?;
    let done = async {
        for (table, rows) in copies {
            send_copy(pg, &format!("COPY {table} FROM STDIN (FORMAT binary)"), rows).await?;
        }
        pg.batch_execute("COMMIT").await.map_err(|e| pg_error(what, &e))
    }
    .await;
    if done.is_err() {
        let _ = pg.batch_execute("ROLLBACK").await;
    }
    done
}

/// Takes the database for this backend: its advisory lock (held while the session lasts), then
/// the schema made or checked.
async fn take_database(pg: &Pg, url: &str, site_code: &str) -> io::Result<()> {
    let locked: bool = pg
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| pg_error("the site database", &e))?
        .get(0);
    if !locked {
        return Err(io::Error::other(format!(
            "the site database {} is being written by another backend",
            redact(url)
        )));
    }
    ensure_schema(pg, site_code).await
}

/// Makes the schema, or checks it: another version is rebuilt (the store refills it); another
/// site's database is refused.
async fn ensure_schema(pg: &Pg, site_code: &str) -> io::Result<()> {
    pg.batch_execute(
        "CREATE TABLE IF NOT EXISTS sumstorm_schema (version int NOT NULL, site_code text NOT NULL)",
    )
    .await
    .map_err(|e| pg_error("making the schema table", &e))?;
    let row = pg
        .query_opt("SELECT version, site_code FROM sumstorm_schema", &[])
        .await
        .map_err(|e| pg_error("reading the schema version", &e))?;
    if let Some(row) = &row {
        let (version, code): (i32, String) = (row.get(0), row.get(1));
        if !code.eq_ignore_ascii_case(site_code) {
            return Err(io::Error::other(format!(
                "the site database holds site {code}, this backend serves site {site_code}"
            )));
        }
        if version == schema::VERSION {
            return Ok(());
        }
    }
    let mut sql = String::from("BEGIN;");
    sql.push_str(schema::DROP);
    sql.push_str(schema::CREATE);
    sql.push_str("DELETE FROM sumstorm_schema;");
    sql.push_str(&format!(
        "INSERT INTO sumstorm_schema VALUES ({}, '{}');",
        schema::VERSION,
        site_code.replace('\'', "''")
    ));
    sql.push_str("INSERT INTO sumstorm_state_names VALUES ");
    let names: Vec<String> = protocol::statenames::all()
        .map(|n| format!("({}, {}, '{}')", n.topic_type, n.state_id, n.name.replace('\'', "''")))
        .collect();
    sql.push_str(&names.join(","));
    sql.push_str("; COMMIT;");
    pg.batch_execute(&sql).await.map_err(|e| pg_error("making the schema", &e))
}

/// Clients' `ResourceID`s: kept in the database, assigned in the order it first sees them.
#[derive(Debug)]
struct Ids {
    map: HashMap<Guid, i32>,
    next: i32,
}

impl Ids {
    async fn load(pg: &Pg) -> io::Result<Ids> {
        let rows = pg
            .query("SELECT guid::text, resource_id FROM sumstorm_client", &[])
            .await
            .map_err(|e| pg_error("reading clients", &e))?;
        let mut map = HashMap::with_capacity(rows.len());
        let mut next = FIRST_ID;
        for r in rows {
            let (guid, rid): (String, i32) = (r.get(0), r.get(1));
            if let Ok(g) = Guid::parse(guid.as_bytes()) {
                map.insert(g, rid);
                next = next.max(rid.saturating_add(1));
            }
        }
        Ok(Ids { map, next })
    }

    fn get(&mut self, id: Guid) -> i32 {
        self.get_new(id).0
    }

    /// The client's `ResourceID`, and whether it was just assigned.
    fn get_new(&mut self, id: Guid) -> (i32, bool) {
        if let Some(&rid) = self.map.get(&id) {
            return (rid, false);
        }
        let rid = self.next;
        self.next = self.next.saturating_add(1);
        self.map.insert(id, rid);
        (rid, true)
    }
}

/// What the database last got of the site and the summaries.
#[derive(Debug, Default)]
struct Written {
    site_version: Option<u64>,
    views: Option<Arc<Views>>,
    /// Update GUID (lower case) → `CI_ID`, for the summaries.
    ci_ids: HashMap<String, i32>,
}

impl Written {
    /// The catalog, update groups and deployments, when the site changed.
    async fn site(&mut self, pg: &Pg, sources: &Sources) -> io::Result<()> {
        let version = sources.site.version();
        if self.site_version == Some(version) {
            return Ok(());
        }
        let (statements, updates, groups, members, deployments, ci_ids) = {
            let site = sources.site.read();
            site_rows(&site)
        };
        let begin = format!(
            "BEGIN; TRUNCATE sumstorm_site, sumstorm_update, sumstorm_update_group, sumstorm_group_member,
                 sumstorm_deployment; {statements}"
        );
        let copies = [
            ("sumstorm_update", updates),
            ("sumstorm_update_group", groups),
            ("sumstorm_group_member", members),
            ("sumstorm_deployment", deployments),
        ];
        replace_tables(pg, &begin, copies, "writing the site").await?;
        self.site_version = Some(version);
        self.ci_ids = ci_ids;
        Ok(())
    }

    /// The summaries, when a summarization published new views.
    async fn summaries(&mut self, pg: &Pg, sources: &Sources) -> io::Result<()> {
        let views = sources.summarizer.views();
        if self.views.as_ref().is_some_and(|v| Arc::ptr_eq(v, &views)) {
            return Ok(());
        }
        let at = |task: Task| views.last_run(task).map(|r| r.at.0);
        let mut updates = CopyRows::new();
        for u in views.updates.iter() {
            let Some(&ci) = self.ci_ids.get(&u.update_id.to_ascii_lowercase()) else { continue };
            updates
                .row(7)
                .int4(ci)
                .timestamp(at(Task::UpdateStatus))
                .int4(u.total as i32)
                .int4(u.unknown as i32)
                .int4(u.not_applicable as i32)
                .int4(u.missing as i32)
                .int4(u.present as i32);
        }
        let mut deployments = CopyRows::new();
        for d in views.deployments.iter() {
            for u in &d.updates {
                let Some(&ci) = self.ci_ids.get(&u.update_id.to_ascii_lowercase()) else { continue };
                let total = u.present + u.missing + u.not_applicable + u.unknown;
                deployments
                    .row(7)
                    .int4(d.deployment_id as i32)
                    .int4(ci)
                    .int4(total as i32)
                    .int4(u.unknown as i32)
                    .int4(u.not_applicable as i32)
                    .int4(u.missing as i32)
                    .int4(u.present as i32);
            }
        }
        let begin = "BEGIN; TRUNCATE sumstorm_update_summary, sumstorm_deployment_summary";
        let copies = [("sumstorm_update_summary", updates), ("sumstorm_deployment_summary", deployments)];
        replace_tables(pg, begin, copies, "writing the summaries").await?;
        self.views = Some(views);
        Ok(())
    }
}

type SiteRows = (String, CopyRows, CopyRows, CopyRows, CopyRows, HashMap<String, i32>);

/// The site's rows: its `sumstorm_site` insert, then updates, groups, members, deployments.
fn site_rows(site: &Site) -> SiteRows {
    let statement = format!(
        "INSERT INTO sumstorm_site VALUES ('{}', '{}', {});",
        site.code.replace('\'', "''"),
        site.update_source_id.styled(GuidStyle::Lower),
        site.content_version
    );
    let deployed: std::collections::HashSet<usize> = site
        .deployments
        .iter()
        .filter_map(|d| site.update_groups.get(d.group))
        .flat_map(|g| g.updates.iter().copied())
        .collect();
    let mut updates = CopyRows::new();
    let mut ci_ids = HashMap::new();
    for (i, u) in site.catalog.updates().iter().enumerate() {
        let ci = FIRST_ID.saturating_add(i as i32);
        ci_ids.insert(u.id.styled(GuidStyle::Lower).to_string(), ci);
        updates.row(9).int4(ci).uuid(u.id.0).int4(u.revision as i32).text(&u.article).text(&u.title);
        updates.int4(u.added_in as i32);
        match u.superseded_by {
            Some((by, at)) => updates.uuid(by.0).int4(at as i32),
            None => updates.null().null(),
        };
        updates.int4(i32::from(deployed.contains(&i)));
    }
    let mut groups = CopyRows::new();
    let mut members = CopyRows::new();
    for g in &site.update_groups {
        let ci = GROUP_CI_BASE.saturating_add(g.id as i32);
        groups.row(3).int4(ci).int4(g.id as i32).text(&g.name);
        for &u in &g.updates {
            members.row(2).int4(ci).int4(FIRST_ID.saturating_add(u as i32));
        }
    }
    let mut deployments = CopyRows::new();
    for d in &site.deployments {
        let group = site.update_groups.get(d.group).map_or(0, |g| g.id);
        let (collection_id, collection_name) = match &d.collection {
            Collection::AllClients => ("SMS00001".to_owned(), "All Systems".to_owned()),
            Collection::AdSites(sites) => {
                (format!("{}{:05X}", site.code, d.id), format!("AD sites: {}", sites.join(", ")))
            }
            Collection::BoundaryGroups(g) => {
                let names: Vec<&str> =
                    g.iter().filter_map(|&i| site.boundary_groups.get(i)).map(|b| b.name.as_str()).collect();
                (format!("{}{:05X}", site.code, d.id), format!("Boundary groups: {}", names.join(", ")))
            }
        };
        deployments
            .row(5)
            .int4(d.id as i32)
            .text(&d.name)
            .int4(GROUP_CI_BASE.saturating_add(group as i32))
            .text(&collection_id)
            .text(&collection_name);
    }
    (statement, updates, groups, members, deployments, ci_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_named_without_their_password() {
        assert_eq!(redact("postgres://sms:secret@db:5432/CM_PS1"), "postgres://sms@db:5432/CM_PS1");
        assert_eq!(redact("postgres://db/CM_PS1"), "postgres://db/CM_PS1");
        assert_eq!(redact("host=/tmp user=x"), "host=/tmp user=x");
    }
}
