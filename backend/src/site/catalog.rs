//! The update catalog WSyncMgr synchronizes: dense (an update's index is its position, which the
//! state store uses as its per-client slot), deterministic from a seed, growing by content
//! version, with supersedence.

use protocol::Guid;

/// The most updates a catalog holds. Syncs that would pass it are refused; the state store's
/// rows, and so its checkpoints, are never wider (the checkpoint loader takes exactly this).
/// The product's largest catalogs hold tens of thousands.
pub const MAX_UPDATES: usize = 1 << 20;

/// The most updates one sync may bring or supersede.
pub const MAX_SYNC_UPDATES: usize = 10_000;

/// One software update as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub id: Guid,
    pub revision: u32,
    /// `KB5012345`
    pub article: String,
    pub title: String,
    /// The content version of the sync that brought it.
    pub added_in: u32,
    /// The update that replaced it, from the sync that did.
    pub superseded_by: Option<(Guid, u32)>,
}

/// The catalog: updates in the order syncs added them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    seed: u64,
    updates: Vec<Update>,
}

/// SplitMix64: a tiny, well-known mixer; enough to spread IDs deterministically.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Catalog {
    /// The catalog as a scan at content `version` sees it, as the site API and the WSUS catalog
    /// endpoint serve it: `{"ContentVersion", "Updates": [{"Index", "UpdateID",
    /// "RevisionNumber", "ArticleID", "Title", "ContentVersion", "SupersededBy"}]}`.
    pub fn to_json(&self, version: u32) -> serde_json::Value {
        let lower = |g: Guid| g.styled(protocol::GuidStyle::Lower).to_string();
        let updates: Vec<serde_json::Value> = self
            .as_of(version)
            .map(|(i, u)| {
                serde_json::json!({
                    "Index": i,
                    "UpdateID": lower(u.id),
                    "RevisionNumber": u.revision,
                    "ArticleID": u.article,
                    "Title": u.title,
                    "ContentVersion": u.added_in,
                    "SupersededBy": u.superseded_by.map(|(g, _)| lower(g)),
                })
            })
            .collect();
        serde_json::json!({ "ContentVersion": version, "Updates": updates })
    }

    /// A catalog of `size` updates, all from content version `version`.
    pub fn generate(seed: u64, size: usize, version: u32) -> Catalog {
        let mut catalog = Catalog { seed, updates: Vec::with_capacity(size) };
        catalog.add(size, version);
        catalog
    }

    fn add(&mut self, count: usize, version: u32) {
        for _ in 0..count {
            let n = self.updates.len() as u64;
            let hi = mix(self.seed ^ n.rotate_left(17));
            let lo = mix(hi ^ n);
            // Version 4 GUID layout, so the IDs look like the real thing.
            let raw = (u128::from(hi) << 64 | u128::from(lo)) & !(0xF << 76) & !(0x3 << 62);
            let id = Guid(raw | (0x4 << 76) | (0x2 << 62));
            let kb = 5_000_000 + (hi % 990_000) as u32;
            self.updates.push(Update {
                id,
                revision: 100 + (lo % 150) as u32,
                article: format!("KB{kb}"),
                title: format!("Security Update for Windows (KB{kb})"),
                added_in: version,
                superseded_by: None,
            });
        }
    }

    pub fn len(&self) -> usize {
        self.updates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    pub fn updates(&self) -> &[Update] {
        &self.updates
    }

    /// The dense index of an update.
    pub fn index_of(&self, id: Guid) -> Option<usize> {
        self.updates.iter().position(|u| u.id == id)
    }

    /// The updates a scan against content version `version` sees: added at or before it and not
    /// superseded at or before it.
    pub fn as_of(&self, version: u32) -> impl Iterator<Item = (usize, &Update)> {
        self.updates
            .iter()
            .enumerate()
            .filter(move |(_, u)| u.added_in <= version && u.superseded_by.is_none_or(|(_, at)| at > version))
    }

    /// A sync to content version `version`: `new` updates arrive, and each of the oldest
    /// `superseded` current updates is superseded by one of them (or by the newest when there are
    /// fewer new ones). Returns the indexes added and superseded.
    pub fn sync(&mut self, version: u32, new: usize, superseded: usize) -> (Vec<usize>, Vec<usize>) {
        let first_new = self.updates.len();
        self.add(new, version);
        let added: Vec<usize> = (first_new..self.updates.len()).collect();
        let mut replaced = Vec::new();
        if !added.is_empty() {
            let current: Vec<usize> = (0..first_new)
                .filter(|&i| self.updates[i].superseded_by.is_none())
                .take(superseded)
                .collect();
            for (k, i) in current.into_iter().enumerate() {
                let by = self.updates[added[k.min(added.len() - 1)]].id;
                self.updates[i].superseded_by = Some((by, version));
                replaced.push(i);
            }
        }
        (added, replaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_distinct_and_guid_shaped() {
        let a = Catalog::generate(7, 200, 38);
        assert_eq!(a, Catalog::generate(7, 200, 38));
        assert_ne!(a.updates()[0].id, Catalog::generate(8, 200, 38).updates()[0].id);
        let ids: std::collections::HashSet<_> = a.updates().iter().map(|u| u.id).collect();
        assert_eq!(ids.len(), 200);
        let text = a.updates()[0].id.styled(protocol::GuidStyle::Lower).to_string();
        assert_eq!(&text[14..15], "4", "version 4: {text}");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "variant: {text}");
        assert_eq!(a.index_of(a.updates()[17].id), Some(17));
    }

    #[test]
    fn sync_grows_and_supersedes_by_version() {
        let mut c = Catalog::generate(1, 10, 38);
        let (added, replaced) = c.sync(39, 3, 2);
        assert_eq!(added, [10, 11, 12]);
        assert_eq!(replaced, [0, 1]);
        assert_eq!(c.as_of(38).count(), 10, "a scan at the old version sees the old catalog");
        let now: Vec<usize> = c.as_of(39).map(|(i, _)| i).collect();
        assert_eq!(now, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(c.updates()[0].superseded_by, Some((c.updates()[10].id, 39)));
        // More superseded than new: the newest takes the rest.
        let (_, replaced) = c.sync(40, 1, 3);
        assert_eq!(replaced, [2, 3, 4]);
        assert!(replaced.iter().all(|&i| c.updates()[i].superseded_by == Some((c.updates()[13].id, 40))));
        assert_eq!(c.sync(41, 0, 5), (vec![], vec![]), "nothing supersedes without new updates");
    }
}
