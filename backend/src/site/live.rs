//! The site while the process runs: the model behind a lock, a version that moves with every
//! sync, the file it is saved to, and the site-server components that change it.
//!
//! - A sync (`POST /api/v1/sync`) is [`LiveSite::sync`]: WSyncMgr, SMSDBMON's `.STN`, the Policy
//!   Provider, then `state/site.json`, all under the write lock, so a reader sees the site before
//!   or after, never between.
//! - The Policy Provider also polls its inbox on its own thread ([`PolicyProvider`]): an `.STN`
//!   dropped there by hand (or left by a sync that crashed) bumps the policy within a poll.
//! - A status migration changes the site through [`LiveSite::change`], which saves it.
//!
//! Readers that derive something from the catalog (StateSys's update index) compare
//! [`LiveSite::version`] with the one they derived from.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::catalog::MAX_UPDATES;
use super::chain::{self, ChainLogs};
use super::{Site, persist};

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub content_version: u32,
    /// The UpdateSource policy's version after the Policy Provider's bump.
    pub policy_version: String,
    pub updates: usize,
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The catalog would grow past [`MAX_UPDATES`]; nothing changed.
    #[error("the catalog would hold {after} updates, past the limit of {MAX_UPDATES}")]
    TooManyUpdates { after: usize },
    /// A file of the chain could not be written.
    #[error("sync failed: {0}")]
    Io(#[from] io::Error),
}

/// The running site (see the module documentation).
#[derive(Debug)]
pub struct LiveSite {
    site: RwLock<Site>,
    version: AtomicU64,
    /// `state/site.json`.
    state_file: PathBuf,
    /// `inboxes/policypv.box`.
    policypv_box: PathBuf,
    chain: ChainLogs,
}

impl LiveSite {
    /// `site` as its site file describes it, brought up to what `state_file` saved.
    pub fn open(
        mut site: Site,
        state_file: PathBuf,
        policypv_box: PathBuf,
        chain: ChainLogs,
    ) -> io::Result<LiveSite> {
        std::fs::create_dir_all(&policypv_box)?;
        persist::restore(&mut site, &state_file)?;
        Ok(LiveSite { site: RwLock::new(site), version: AtomicU64::new(0), state_file, policypv_box, chain })
    }

    /// A running site kept entirely in `dir` (the chain's logs, `site.json`, `policypv.box`):
    /// what tests and benches use.
    pub fn open_in(
        dir: &std::path::Path,
        site: Site,
        clock: crate::clock::SiteClock,
    ) -> io::Result<LiveSite> {
        let chain = ChainLogs::open(dir, clock)?;
        LiveSite::open(site, dir.join("site.json"), dir.join("policypv.box"), chain)
    }

    /// The site now. Hold it briefly: a sync waits for readers.
    pub fn read(&self) -> RwLockReadGuard<'_, Site> {
        self.site.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves with every sync.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// A SUP sync bringing `new` updates and superseding `superseded`: WSyncMgr, SMSDBMON's
    /// `.STN`, the Policy Provider, and the site saved.
    pub fn sync(&self, new: usize, superseded: usize) -> Result<Synced, SyncError> {
        let mut site = self.site.write().unwrap_or_else(|p| p.into_inner());
        let after = site.catalog.len().saturating_add(new);
        if after > MAX_UPDATES {
            return Err(SyncError::TooManyUpdates { after });
        }
        let content_version = chain::wsync(&mut site, new, superseded, &self.chain);
        chain::smsdbmon_drop(&site, &self.policypv_box, &self.chain)?;
        chain::policy_provider(&mut site, &self.policypv_box, &self.chain)?;
        persist::save(&site, &self.state_file)?;
        self.version.fetch_add(1, Ordering::Release);
        Ok(Synced { content_version, policy_version: site.policy_version(), updates: site.catalog.len() })
    }

    /// Changes the site with `f` and, if it says it changed something, saves it. The change
    /// stands even if saving fails.
    pub fn change(&self, f: impl FnOnce(&mut Site) -> bool) -> io::Result<()> {
        let mut site = self.site.write().unwrap_or_else(|p| p.into_inner());
        if f(&mut site) {
            persist::save(&site, &self.state_file)?;
        }
        Ok(())
    }

    /// One pass of the Policy Provider over its inbox: an `.STN` bumps the UpdateSource policy.
    pub fn policy_provider_pass(&self) -> io::Result<()> {
        let has_stn = std::fs::read_dir(&self.policypv_box).is_ok_and(|entries| {
            entries.flatten().any(|e| e.path().extension().is_some_and(|x| x.eq_ignore_ascii_case("STN")))
        });
        if !has_stn {
            return Ok(());
        }
        let mut site = self.site.write().unwrap_or_else(|p| p.into_inner());
        chain::policy_provider(&mut site, &self.policypv_box, &self.chain)?;
        persist::save(&site, &self.state_file)
    }
}

/// The Policy Provider's thread: a pass over its inbox every poll, until stopped.
#[derive(Debug)]
pub struct PolicyProvider {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl PolicyProvider {
    pub fn start(site: std::sync::Arc<LiveSite>, poll: Duration) -> io::Result<PolicyProvider> {
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new().name("policy-provider".into()).spawn(move || {
            loop {
                if let Err(e) = site.policy_provider_pass() {
                    eprintln!("sumstorm: Policy Provider: {e}");
                }
                match stopped.recv_timeout(poll) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
        Ok(PolicyProvider { stop, thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
