//! What the site learned since its site file: the syncs (from which the deterministic catalog
//! and the update groups that take new updates are rebuilt), the policy version and how far
//! status migration has gone. Without it, a restart after a sync would forget the new updates
//! and StateSys could no longer resolve the records clients send for them.
//!
//! One small JSON file, `state/site.json`, replaced atomically (written to a temporary name,
//! synced, renamed, directory synced) after every change.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Site;
use super::catalog::{MAX_SYNC_UPDATES, MAX_UPDATES};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SiteState {
    /// The site file this state grew from: a data directory holds one site's state.
    site_code: String,
    update_source_id: String,
    base_updates: usize,
    content_version: u32,
    policy_major: u32,
    migrated_through: u32,
    /// `[new, superseded]` per sync, in order.
    syncs: Vec<(usize, usize)>,
}

fn state_of(site: &Site) -> SiteState {
    let synced: usize = site.syncs.iter().map(|(new, _)| new).sum();
    SiteState {
        site_code: site.code.clone(),
        update_source_id: site.update_source_id.to_string(),
        base_updates: site.catalog.len() - synced,
        content_version: site.content_version,
        policy_major: site.policy_major,
        migrated_through: site.migrated_through,
        syncs: site.syncs.clone(),
    }
}

/// Writes the site's state to `path` atomically.
pub fn save(site: &Site, path: &Path) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&state_of(site)).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Brings `site` (as its site file describes it) up to the state saved at `path`, if any.
/// A state saved for another site is an error, not something to mix in.
pub fn restore(site: &mut Site, path: &Path) -> io::Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let state: SiteState = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
    let base = state_of(site);
    if (state.site_code.as_str(), state.update_source_id.as_str(), state.base_updates)
        != (base.site_code.as_str(), base.update_source_id.as_str(), base.base_updates)
        || !site.syncs.is_empty()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} belongs to another site (or another site file); use a fresh data directory",
                path.display()
            ),
        ));
    }
    // What the writer can have written: syncs within the API's bounds, a catalog within its limit.
    let total = state.syncs.iter().try_fold(state.base_updates, |n, &(new, superseded)| {
        (new <= MAX_SYNC_UPDATES && superseded <= MAX_SYNC_UPDATES).then(|| n.saturating_add(new))
    });
    if total.is_none_or(|n| n > MAX_UPDATES) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: its syncs take the catalog past {MAX_UPDATES} updates", path.display()),
        ));
    }
    let first_version = state.content_version.saturating_sub(state.syncs.len() as u32);
    site.content_version = first_version;
    for &(new, superseded) in &state.syncs {
        site.sync(new, superseded);
    }
    site.policy_major = state.policy_major;
    site.migrated_through = state.migrated_through;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_comes_back_to_the_synced_site() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.json");
        let mut site = Site::default_site();
        let mut fresh = Site::default_site();
        restore(&mut fresh, &path).unwrap();
        assert_eq!(fresh, site, "no state: the site file's site");
        site.sync(20, 5);
        site.policy_major += 1;
        site.sync(3, 1);
        site.policy_major += 1;
        site.migrated_through = site.content_version;
        save(&site, &path).unwrap();
        let mut back = Site::default_site();
        restore(&mut back, &path).unwrap();
        assert_eq!(back, site);
        assert_eq!(back.update_groups[1].updates.len(), 123, "the ADR-like group took the new updates");

        let mut other = Site::default_site();
        other.code = "XYZ".into();
        let err = restore(&mut other, &path).unwrap_err();
        assert!(err.to_string().contains("another site"), "{err}");
        fs::write(&path, b"{ nope").unwrap();
        assert_eq!(restore(&mut Site::default_site(), &path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
        /// Whatever syncs the API lets through (up to its bounds), what the writer saves the
        /// reader restores to the same site.
        #[test]
        fn whatever_is_saved_restores(
            syncs in proptest::collection::vec((0..=MAX_SYNC_UPDATES, 0..=MAX_SYNC_UPDATES), 0..6),
            bumps in 0u32..5,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("site.json");
            let mut site = Site::default_site();
            for (new, superseded) in syncs {
                site.sync(new, superseded);
            }
            site.policy_major += bumps;
            save(&site, &path).unwrap();
            let mut back = Site::default_site();
            restore(&mut back, &path).unwrap();
            proptest::prop_assert!(back == site);
        }
    }

    /// A state past the catalog limit (only a hand-edited file can hold one) is refused, not
    /// rebuilt into a catalog the checkpoint loader would refuse.
    #[test]
    fn a_state_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.json");
        let mut state = state_of(&Site::default_site());
        state.syncs = vec![(MAX_SYNC_UPDATES, 0); MAX_UPDATES / MAX_SYNC_UPDATES + 1];
        state.content_version += state.syncs.len() as u32;
        fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
        let err = restore(&mut Site::default_site(), &path).unwrap_err();
        assert!(err.to_string().contains("past"), "{err}");
        state.syncs = vec![(MAX_SYNC_UPDATES + 1, 0)];
        fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
        assert!(restore(&mut Site::default_site(), &path).is_err());
    }
}
