//! What a SUP sync sets off on the site server (seed, "Software update scan policy"):
//!
//! 1. **WSyncMgr** finishes a sync: the content version rises ([`Site::sync`]).
//! 2. **SMSDBMON** sees `Update_SyncStatus` change and drops `<UpdateSourceID>.STN` into
//!    `inboxes/policypv.box` ([`smsdbmon_drop`]).
//! 3. **Policy Provider** finds the `.STN`, bumps the UpdateSource policy version and deletes the
//!    file ([`policy_provider`]). Clients see the new version on their next policy poll.
//!
//! Each step logs the product's lines. These functions do the file work on a [`Site`];
//! [`super::live`] runs them on the running site (WSyncMgr on `POST /api/v1/sync`, the Policy
//! Provider on its own thread's poll).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use protocol::{Guid, GuidStyle};

use super::Site;
use crate::clock::SiteClock;
use crate::logs::{ComponentLog, Format};

/// The component logs of the chain.
#[derive(Debug)]
pub struct ChainLogs {
    /// `WSyncMgr.log` (SMS_WSUS_SYNC_MANAGER)
    pub wsyncmgr: ComponentLog,
    /// `SMSDBMON.log` (SMS_DATABASE_NOTIFICATION_MONITOR)
    pub smsdbmon: ComponentLog,
    /// `PolicyPv.log` (SMS_POLICY_PROVIDER)
    pub policypv: ComponentLog,
}

impl ChainLogs {
    /// The three logs in `dir`, in the site server's format.
    pub fn open(dir: &Path, clock: SiteClock) -> io::Result<ChainLogs> {
        let open =
            |file: &str, component: &str| ComponentLog::open(dir, file, component, Format::Site, clock);
        Ok(ChainLogs {
            wsyncmgr: open("WSyncMgr.log", "SMS_WSUS_SYNC_MANAGER")?,
            smsdbmon: open("SMSDBMON.log", "SMS_DATABASE_NOTIFICATION_MONITOR")?,
            policypv: open("PolicyPv.log", "SMS_POLICY_PROVIDER")?,
        })
    }
}

/// WSyncMgr: a successful sync bringing `new` updates and superseding `superseded`. Returns the
/// new content version.
pub fn wsync(site: &mut Site, new: usize, superseded: usize, logs: &ChainLogs) -> u32 {
    let names: Vec<String> = site.sups.iter().map(|s| s.name.clone()).collect();
    for sup in &names {
        logs.wsyncmgr.info(&format!("Synchronizing SMS database with WSUS server {sup}"));
    }
    let version = site.sync(new, superseded);
    logs.wsyncmgr.info(&format!(
        "Synchronizing update source {} to content version {version}: {new} new updates, {superseded} superseded",
        site.update_source_id.styled(GuidStyle::UpperBraced)
    ));
    for sup in &names {
        logs.wsyncmgr.info(&format!("Done synchronizing SMS with WSUS Server {sup}"));
    }
    logs.wsyncmgr
        .info(&format!("Sync succeeded. Setting sync alert to canceled state on site {}", site.code));
    version
}

/// SMSDBMON: the `Update_SyncStatus` change drops `<UpdateSourceID>.STN` (non-zero) into
/// `policypv_box`. Returns the file's path.
pub fn smsdbmon_drop(site: &Site, policypv_box: &Path, logs: &ChainLogs) -> io::Result<PathBuf> {
    let id = site.update_source_id.styled(GuidStyle::UpperBraced).to_string();
    logs.smsdbmon.info(&format!(
        "RCV: UPDATE on Update_SyncStatus for UpdSyncStatus_iu [{id}][{}]",
        site.content_version
    ));
    fs::create_dir_all(policypv_box)?;
    let path = policypv_box.join(format!("{id}.STN"));
    // Written whole and synced before it is named, so the Policy Provider never sees half a file.
    let tmp = policypv_box.join(format!("{id}.STN.tmp"));
    fs::write(&tmp, format!("{id} {}\n", site.content_version))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    logs.smsdbmon.info(&format!("SND: Dropped {} (non-zero) [{}]", path.display(), site.content_version));
    Ok(path)
}

/// Policy Provider: every `.STN` in `policypv_box` for this site's UpdateSource bumps the
/// UpdateSource policy version once per pass and is deleted; one for another UpdateSource is
/// deleted without effect. Returns the UpdateSource IDs found.
pub fn policy_provider(site: &mut Site, policypv_box: &Path, logs: &ChainLogs) -> io::Result<Vec<Guid>> {
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = match fs::read_dir(policypv_box) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("STN")))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut bump = false;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        logs.policypv.info(&format!("Found {name}"));
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        match Guid::parse(stem.as_bytes()) {
            Ok(id) => {
                logs.policypv.info(&format!("Added Scan Tool ID {}", id.styled(GuidStyle::UpperBraced)));
                bump |= id == site.update_source_id;
                found.push(id);
            }
            Err(_) => logs.policypv.info(&format!("Ignoring {name}: not an update source notification")),
        }
        logs.policypv.info(&format!("Adding to delete list: {}", path.display()));
        fs::remove_file(&path)?;
    }
    if bump {
        site.policy_major += 1;
        logs.policypv.info(&format!(
            "Updated policy {} for update source {} to version {} (content version {})",
            site.policy_id,
            site.update_source_id.styled(GuidStyle::UpperBraced),
            site.policy_version(),
            site.content_version
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(dir: &Path) -> ChainLogs {
        ChainLogs::open(dir, SiteClock::real_time()).unwrap()
    }

    #[test]
    fn sync_drops_an_stn_and_the_policy_provider_bumps_the_version() {
        let tmp = tempfile::tempdir().unwrap();
        let (log_dir, inbox) = (tmp.path().join("logs"), tmp.path().join("inboxes/policypv.box"));
        let logs = logs(&log_dir);
        let mut site = Site::default_site();
        assert_eq!(wsync(&mut site, 20, 5, &logs), 39);
        let stn = smsdbmon_drop(&site, &inbox, &logs).unwrap();
        assert_eq!(stn.file_name().unwrap(), "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}.STN");
        assert!(fs::metadata(&stn).unwrap().len() > 0, "non-zero");
        assert_eq!(site.policy_version(), "40.00", "not before the Policy Provider runs");
        // A notification for another update source is removed without effect.
        fs::write(inbox.join("{00000000-0000-0000-0000-000000000001}.STN"), "x").unwrap();
        let found = policy_provider(&mut site, &inbox, &logs).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(site.policy_version(), "41.00");
        assert_eq!(fs::read_dir(&inbox).unwrap().count(), 0, "STN files deleted");
        assert_eq!(policy_provider(&mut site, &inbox, &logs).unwrap(), [], "nothing left to do");
        assert_eq!(site.policy_version(), "41.00");

        let read = |f: &str| fs::read_to_string(log_dir.join(f)).unwrap();
        let id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}";
        let dbmon = read("SMSDBMON.log");
        assert!(dbmon.contains(&format!("RCV: UPDATE on Update_SyncStatus for UpdSyncStatus_iu [{id}]")));
        assert!(dbmon.contains(&format!("{id}.STN (non-zero)")));
        let pv = read("PolicyPv.log");
        for line in
            [format!("Found {id}.STN"), format!("Added Scan Tool ID {id}"), "Adding to delete list:".into()]
        {
            assert!(pv.contains(&line), "{line}");
        }
        assert!(pv.contains("$$<SMS_POLICY_PROVIDER>"));
        assert!(
            read("WSyncMgr.log").contains("Sync succeeded. Setting sync alert to canceled state on site PS1")
        );
    }
}
