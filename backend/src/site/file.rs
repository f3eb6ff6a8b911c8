//! The site file (TOML): raw as serde reads it, then validated into a [`Site`] with errors that
//! name the key. Without a file, `backend serve` uses [`Site::default_site`].
//!
//! ```toml
//! site_code = "PS1"
//! update_source_id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"
//! content_version = 38                        # of the last successful sync
//! policy_id = "{d0855677-b0a6-4e33-9bd5-7b0d06f0a2be}"
//! policy_version = 40                         # major part: 40 is "40.00"
//! catalog_size = 200
//! catalog_seed = 1
//!
//! [[boundary_group]]
//! name = "Everywhere"
//! subnets = ["192.168.2.0"]                   # subnet IDs clients report
//! ip_ranges = ["0.0.0.0-255.255.255.255"]     # inclusive IPv4 ranges
//! ad_sites = ["CM12-R2-PS1"]
//!
//! [[sup]]
//! name = "PS1SITE"
//! boundary_groups = ["Everywhere"]
//! intranet = true                             # default true
//! internet = false                            # default false
//! synced_version = 37                         # optional: a SUP behind the site
//!
//! [[dp]]                                      # optional: distribution points (content location)
//! name = "PS1DP.contoso.com"
//! boundary_groups = ["Everywhere"]
//!
//! [[update_group]]
//! name = "Security Updates 2026-10"
//! updates = ["0..100", "KB5012345", 150]      # index ranges, single indexes, ArticleIDs, UpdateIDs
//! new_updates = false                         # true: updates later syncs bring join the group
//!
//! [[deployment]]
//! name = "Security Updates 2026-10 - All Desktops"
//! update_group = "Security Updates 2026-10"
//! ad_sites = ["CM12-R2-PS1"]                  # or boundary_groups = [...]; neither: all clients
//!
//! [summarization]                             # site time; s, m, h or d
//! update_status = "1h"
//! update_group_status = "1h"
//! assignment_compliance = "1h"
//! migrate_update_status = "1d"
//! delete_aged_status = "1d"
//! aged_after = "90d"
//! ```

use std::net::Ipv4Addr;
use std::time::Duration;

use protocol::Guid;
use protocol::units::parse_span;
use serde::Deserialize;

use super::{
    Boundary, BoundaryGroup, Catalog, Collection, Deployment, Dp, Schedules, Site, Sup, UpdateGroup,
};

/// The highest content or policy version a site file may start from (room for syncs after).
pub const MAX_VERSION: u32 = 10_000_000;

/// A site file that cannot be used, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("site file: {0}")]
    Toml(String),
    #[error("site file: `{key}`: {why}")]
    Invalid { key: String, why: String },
}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> SiteError {
    SiteError::Invalid { key: key.into(), why: why.into() }
}

/// The site file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub site_code: String,
    pub update_source_id: String,
    #[serde(default = "default_content_version")]
    pub content_version: u32,
    #[serde(default = "default_policy_id")]
    pub policy_id: String,
    #[serde(default = "default_policy_version")]
    pub policy_version: u32,
    #[serde(default = "default_catalog_size")]
    pub catalog_size: usize,
    #[serde(default = "default_catalog_seed")]
    pub catalog_seed: u64,
    #[serde(default)]
    pub boundary_group: Vec<BoundaryGroupFile>,
    #[serde(default)]
    pub sup: Vec<SupFile>,
    #[serde(default)]
    pub dp: Vec<DpFile>,
    #[serde(default)]
    pub update_group: Vec<UpdateGroupFile>,
    #[serde(default)]
    pub deployment: Vec<DeploymentFile>,
    #[serde(default)]
    pub summarization: SummarizationFile,
}

/// An update group's member: an index, an index range `"A..B"`, an ArticleID or an UpdateID.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum UpdateRef {
    Index(usize),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupFile {
    pub name: String,
    pub updates: Vec<UpdateRef>,
    #[serde(default)]
    pub new_updates: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    pub name: String,
    pub update_group: String,
    pub ad_sites: Option<Vec<String>>,
    pub boundary_groups: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizationFile {
    pub update_status: Option<String>,
    pub update_group_status: Option<String>,
    pub assignment_compliance: Option<String>,
    pub migrate_update_status: Option<String>,
    pub delete_aged_status: Option<String>,
    pub aged_after: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundaryGroupFile {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub ip_ranges: Vec<String>,
    #[serde(default)]
    pub ad_sites: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpFile {
    pub name: String,
    pub boundary_groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupFile {
    pub name: String,
    pub boundary_groups: Vec<String>,
    #[serde(default = "yes")]
    pub intranet: bool,
    #[serde(default)]
    pub internet: bool,
    pub synced_version: Option<u32>,
}

fn default_content_version() -> u32 {
    38
}
fn default_policy_id() -> String {
    "{d0855677-b0a6-4e33-9bd5-7b0d06f0a2be}".into()
}
fn default_policy_version() -> u32 {
    40
}
fn default_catalog_size() -> usize {
    200
}
fn default_catalog_seed() -> u64 {
    1
}
fn yes() -> bool {
    true
}

fn ipv4(key: &str, text: &str) -> Result<Ipv4Addr, SiteError> {
    text.trim().parse().map_err(|_| invalid(key, format!("{text:?} is not an IPv4 address")))
}

impl SiteFile {
    /// Reads a site file's text.
    pub fn parse(text: &str) -> Result<SiteFile, SiteError> {
        toml::from_str(text).map_err(|e| SiteError::Toml(e.to_string()))
    }

    /// Validates into the site the backend runs.
    pub fn into_site(self) -> Result<Site, SiteError> {
        let code = self.site_code.trim();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("site_code", "a site code is three letters or digits"));
        }
        let update_source_id = Guid::parse(self.update_source_id.trim().as_bytes())
            .map_err(|e| invalid("update_source_id", e.to_string()))?;
        let policy_guid =
            Guid::parse(self.policy_id.trim().as_bytes()).map_err(|e| invalid("policy_id", e.to_string()))?;
        if self.catalog_size == 0 || self.catalog_size > 100_000 {
            return Err(invalid("catalog_size", "must be 1 to 100000"));
        }
        // Versions rise by one per sync; a site's are in the hundreds or thousands.
        for (key, v) in [("content_version", self.content_version), ("policy_version", self.policy_version)] {
            if v > MAX_VERSION {
                return Err(invalid(key, format!("must be at most {MAX_VERSION}")));
            }
        }
        let mut boundary_groups = Vec::new();
        for (i, g) in self.boundary_group.iter().enumerate() {
            let key = |field: &str| format!("boundary_group[{i}].{field}");
            if g.name.trim().is_empty() || boundary_groups.iter().any(|b: &BoundaryGroup| b.name == g.name) {
                return Err(invalid(key("name"), "names must be present and unique"));
            }
            let mut boundaries = Vec::new();
            for s in &g.subnets {
                boundaries.push(Boundary::Subnet(ipv4(&key("subnets"), s)?));
            }
            for r in &g.ip_ranges {
                let (lo, hi) =
                    r.split_once('-').ok_or_else(|| invalid(key("ip_ranges"), "a range is FIRST-LAST"))?;
                let (lo, hi) = (ipv4(&key("ip_ranges"), lo)?, ipv4(&key("ip_ranges"), hi)?);
                if lo > hi {
                    return Err(invalid(key("ip_ranges"), format!("{r:?} ends before it starts")));
                }
                boundaries.push(Boundary::Range(lo, hi));
            }
            boundaries.extend(g.ad_sites.iter().map(|s| Boundary::AdSite(s.trim().to_owned())));
            if boundaries.is_empty() {
                return Err(invalid(key("name"), "a boundary group needs subnets, ip_ranges or ad_sites"));
            }
            boundary_groups.push(BoundaryGroup { name: g.name.clone(), boundaries });
        }
        let mut sups: Vec<Sup> = Vec::new();
        for (i, s) in self.sup.iter().enumerate() {
            let key = |field: &str| format!("sup[{i}].{field}");
            let name_ok =
                !s.name.is_empty() && s.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !name_ok || sups.iter().any(|x| x.name.eq_ignore_ascii_case(&s.name)) {
                return Err(invalid(key("name"), "names must be unique letters, digits or '-'"));
            }
            let groups = group_indexes(&boundary_groups, &s.boundary_groups, &key("boundary_groups"))?;
            if !s.intranet && !s.internet {
                return Err(invalid(key("intranet"), "a SUP serves the intranet, the internet or both"));
            }
            if s.synced_version.is_some_and(|v| v > self.content_version) {
                return Err(invalid(key("synced_version"), "cannot be past the site's content_version"));
            }
            sups.push(Sup {
                name: s.name.clone(),
                intranet: s.intranet,
                internet: s.internet,
                boundary_groups: groups,
                synced_version: s.synced_version,
            });
        }
        if sups.is_empty() {
            return Err(invalid("sup", "a site needs at least one SUP"));
        }
        let mut dps: Vec<Dp> = Vec::new();
        for (i, d) in self.dp.iter().enumerate() {
            let key = |field: &str| format!("dp[{i}].{field}");
            let name_ok = !d.name.is_empty()
                && d.name.len() <= 255
                && d.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !name_ok || dps.iter().any(|x| x.name.eq_ignore_ascii_case(&d.name)) {
                return Err(invalid(
                    key("name"),
                    "names must be unique host names (letters, digits, '-', '.')",
                ));
            }
            let groups = group_indexes(&boundary_groups, &d.boundary_groups, &key("boundary_groups"))?;
            dps.push(Dp { name: d.name.clone(), boundary_groups: groups });
        }
        if boundary_groups.len() > 64 {
            return Err(invalid("boundary_group", "a site has at most 64 boundary groups"));
        }
        let catalog = Catalog::generate(self.catalog_seed, self.catalog_size, self.content_version);
        let mut update_groups: Vec<UpdateGroup> = Vec::new();
        for (i, g) in self.update_group.iter().enumerate() {
            let key = |field: &str| format!("update_group[{i}].{field}");
            if g.name.trim().is_empty() || update_groups.iter().any(|x| x.name == g.name) {
                return Err(invalid(key("name"), "names must be present and unique"));
            }
            let mut updates = Vec::new();
            for r in &g.updates {
                updates.extend(resolve(&catalog, r).map_err(|why| invalid(key("updates"), why))?);
            }
            updates.sort_unstable();
            updates.dedup();
            update_groups.push(UpdateGroup {
                id: 16_777_500 + i as u32,
                name: g.name.clone(),
                updates,
                takes_new_updates: g.new_updates,
            });
        }
        let mut deployments: Vec<Deployment> = Vec::new();
        for (i, d) in self.deployment.iter().enumerate() {
            let key = |field: &str| format!("deployment[{i}].{field}");
            if d.name.trim().is_empty() || deployments.iter().any(|x| x.name == d.name) {
                return Err(invalid(key("name"), "names must be present and unique"));
            }
            let group = update_groups.iter().position(|g| g.name == d.update_group).ok_or_else(|| {
                invalid(key("update_group"), format!("no update group named {:?}", d.update_group))
            })?;
            let collection = match (&d.ad_sites, &d.boundary_groups) {
                (Some(_), Some(_)) => {
                    return Err(invalid(key("ad_sites"), "target AD sites or boundary groups, not both"));
                }
                (None, None) => Collection::AllClients,
                (Some(sites), None) => {
                    Collection::AdSites(sites.iter().map(|s| s.trim().to_owned()).collect())
                }
                (None, Some(groups)) => Collection::BoundaryGroups(group_indexes(
                    &boundary_groups,
                    groups,
                    &key("boundary_groups"),
                )?),
            };
            deployments.push(Deployment {
                id: 16_777_217 + i as u32,
                name: d.name.clone(),
                group,
                collection,
            });
        }
        let s = &self.summarization;
        let span = |key: &str, value: &Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => parse_span(text).ok_or_else(|| {
                invalid(
                    format!("summarization.{key}"),
                    format!("{text:?} is not a span like \"1h\" or \"90d\""),
                )
            }),
        };
        let d = Schedules::default();
        let schedules = Schedules {
            update_status: span("update_status", &s.update_status, d.update_status)?,
            update_group_status: span("update_group_status", &s.update_group_status, d.update_group_status)?,
            assignment_compliance: span(
                "assignment_compliance",
                &s.assignment_compliance,
                d.assignment_compliance,
            )?,
            migrate_update_status: span(
                "migrate_update_status",
                &s.migrate_update_status,
                d.migrate_update_status,
            )?,
            delete_aged_status: span("delete_aged_status", &s.delete_aged_status, d.delete_aged_status)?,
            aged_after: span("aged_after", &s.aged_after, d.aged_after)?,
        };
        Ok(Site {
            code: code.to_ascii_uppercase(),
            update_source_id,
            content_version: self.content_version,
            policy_id: format!("{{{}}}", policy_guid.styled(protocol::GuidStyle::Lower)),
            policy_major: self.policy_version,
            sups,
            dps,
            boundary_groups,
            catalog,
            update_groups,
            deployments,
            schedules,
            migrated_through: 0,
            syncs: Vec::new(),
        })
    }
}

/// The catalog indexes an update group member names.
fn resolve(catalog: &Catalog, r: &UpdateRef) -> Result<Vec<usize>, String> {
    let len = catalog.len();
    let text = match r {
        UpdateRef::Index(i) if *i < len => return Ok(vec![*i]),
        UpdateRef::Index(i) => return Err(format!("index {i} is past the catalog's {len} updates")),
        UpdateRef::Text(t) => t.trim(),
    };
    if let Some((a, b)) = text.split_once("..") {
        let (a, b) = (a.trim().parse::<usize>(), b.trim().parse::<usize>());
        return match (a, b) {
            (Ok(a), Ok(b)) if a < b && b <= len => Ok((a..b).collect()),
            _ => Err(format!("{text:?} is not a range A..B within the catalog's {len} updates")),
        };
    }
    let found = if text.len() > 2 && text[..2].eq_ignore_ascii_case("KB") {
        catalog.updates().iter().position(|u| u.article.eq_ignore_ascii_case(text))
    } else {
        Guid::parse(text.as_bytes()).ok().and_then(|id| catalog.index_of(id))
    };
    found.map(|i| vec![i]).ok_or_else(|| format!("{text:?} is not an update of the catalog"))
}

/// The indexes of the boundary groups `names` names (`key` names the list in errors).
fn group_indexes(groups: &[BoundaryGroup], names: &[String], key: &str) -> Result<Vec<usize>, SiteError> {
    names
        .iter()
        .map(|g| {
            groups
                .iter()
                .position(|b| &b.name == g)
                .ok_or_else(|| invalid(key, format!("no boundary group named {g:?}")))
        })
        .collect()
}

impl Site {
    /// The site `backend serve` builds without a site file (contract §2.1): site PS1, the seed's
    /// UpdateSource, two SUPs and a DP, one boundary group covering every address, 200 updates in two
    /// update groups, each deployed once (the second, which takes new updates, to the boundary
    /// group).
    pub fn default_site() -> Site {
        const DEFAULT: &str = r#"
            site_code = "PS1"
            update_source_id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"
            [[boundary_group]]
            name = "Default-Site-Boundary-Group"
            ip_ranges = ["0.0.0.0-255.255.255.255"]
            [[sup]]
            name = "PS1SITE"
            boundary_groups = ["Default-Site-Boundary-Group"]
            [[sup]]
            name = "PS1SYS"
            boundary_groups = ["Default-Site-Boundary-Group"]
            internet = true
            [[dp]]
            name = "PS1DP.contoso.com"
            boundary_groups = ["Default-Site-Boundary-Group"]
            [[update_group]]
            name = "Security Updates 2026-10"
            updates = ["0..100"]
            [[update_group]]
            name = "Security Updates 2026-11"
            updates = ["100..200"]
            new_updates = true
            [[deployment]]
            name = "Security Updates 2026-10 - All Clients"
            update_group = "Security Updates 2026-10"
            [[deployment]]
            name = "Security Updates 2026-11 - Default Boundary"
            update_group = "Security Updates 2026-11"
            boundary_groups = ["Default-Site-Boundary-Group"]
        "#;
        // The text above is part of the program; a test proves it validates.
        SiteFile::parse(DEFAULT).and_then(SiteFile::into_site).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_site() {
        let s = Site::default_site();
        assert_eq!(s.code, "PS1");
        assert_eq!(s.sups.len(), 2);
        assert_eq!(s.boundary_groups.len(), 1);
        assert_eq!(s.catalog.len(), 200);
        assert_eq!(s.policy_version(), "40.00");
        assert_eq!(s.policy_id, "{d0855677-b0a6-4e33-9bd5-7b0d06f0a2be}");
        assert_eq!(s.update_groups.len(), 2);
        assert_eq!(s.update_groups[0].updates, (0..100).collect::<Vec<_>>());
        assert_eq!(s.deployments.len(), 2);
        assert_eq!(s.deployments[1].collection, Collection::BoundaryGroups(vec![0]));
        assert_eq!(s.schedules, Schedules::default());
    }

    #[test]
    fn update_groups_deployments_and_schedules() {
        let site = Site::default_site();
        let kb = site.catalog.updates()[7].article.clone();
        let id = site.catalog.updates()[9].id.styled(protocol::GuidStyle::UpperBraced).to_string();
        let text = format!(
            r#"
            site_code = "PS1"
            update_source_id = "{{C2D17964-BBDD-4339-B9F3-12D7205B39CC}}"
            [[boundary_group]]
            name = "A"
            subnets = ["10.0.0.0"]
            [[sup]]
            name = "S1"
            boundary_groups = ["A"]
            [[update_group]]
            name = "G"
            updates = ["2..5", 4, "{kb}", "{id}"]
            [[deployment]]
            name = "D"
            update_group = "G"
            ad_sites = ["HQ"]
            [summarization]
            update_status = "15m"
            aged_after = "2d"
            "#
        );
        let s = SiteFile::parse(&text).unwrap().into_site().unwrap();
        assert_eq!(s.update_groups[0].updates, [2, 3, 4, 7, 9]);
        assert_eq!(s.deployments[0].collection, Collection::AdSites(vec!["HQ".into()]));
        assert_eq!(s.schedules.update_status, Duration::from_secs(900));
        assert_eq!(s.schedules.aged_after, Duration::from_secs(2 * 86_400));
        assert_eq!(s.schedules.delete_aged_status, Duration::from_secs(86_400));
    }

    #[test]
    fn errors_name_the_key() {
        let base = r#"
            site_code = "PS1"
            update_source_id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"
            [[boundary_group]]
            name = "A"
            subnets = ["10.0.0.0"]
            [[sup]]
            name = "S1"
            boundary_groups = ["A"]
        "#;
        assert!(SiteFile::parse(base).unwrap().into_site().is_ok());
        let cases = [
            (base.replace("\"PS1\"", "\"PS12\""), "site_code"),
            (base.replace("{C2D17964", "{X2D17964"), "update_source_id"),
            (base.replace("\"10.0.0.0\"", "\"10.0.0\""), "boundary_group[0].subnets"),
            (
                base.replace("boundary_groups = [\"A\"]", "boundary_groups = [\"B\"]"),
                "sup[0].boundary_groups",
            ),
            (
                base.replace("subnets = [\"10.0.0.0\"]", "ip_ranges = [\"10.0.0.9-10.0.0.1\"]"),
                "boundary_group[0].ip_ranges",
            ),
            (format!("catalog_size = 0\n{base}"), "catalog_size"),
            (
                format!("{base}\n[[update_group]]\nname = \"G\"\nupdates = [\"0..900\"]"),
                "update_group[0].updates",
            ),
            (
                format!("{base}\n[[update_group]]\nname = \"G\"\nupdates = [\"KB1\"]"),
                "update_group[0].updates",
            ),
            (
                format!("{base}\n[[deployment]]\nname = \"D\"\nupdate_group = \"nope\""),
                "deployment[0].update_group",
            ),
            (
                format!(
                    "{base}\n[[update_group]]\nname = \"G\"\nupdates = [1]\n[[deployment]]\nname = \"D\"\nupdate_group = \"G\"\nboundary_groups = [\"Z\"]"
                ),
                "deployment[0].boundary_groups",
            ),
            (format!("{base}\n[summarization]\naged_after = \"forever\""), "summarization.aged_after"),
            (
                format!(
                    "content_version = 5\n{base}\n[[sup]]\nname = \"S2\"\nboundary_groups = [\"A\"]\nsynced_version = 6"
                ),
                "sup[1].synced_version",
            ),
        ];
        for (text, key) in cases {
            let err = SiteFile::parse(&text).and_then(SiteFile::into_site).unwrap_err();
            assert!(matches!(&err, SiteError::Invalid { key: k, .. } if k == key), "{key}: {err}");
        }
        let unknown = SiteFile::parse(&format!("{base}\nbogus = 1")).unwrap_err();
        assert!(unknown.to_string().contains("bogus"), "{unknown}");
    }

    /// Site files with arbitrary values where values go: every one is used or refused with the
    /// key named, never a panic; what is used survives syncs with versions rising by one.
    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[0-9]{1,25}(\\.[0-9]{0,3})?[smhdx]?",
                "[0-9]{1,12}\\.\\.[0-9]{1,12}",
                "[ -~]{0,24}",
                "KB[0-9]{1,9}",
                "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3})?",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
            #[test]
            fn used_or_refused_by_key(
                catalog_size in prop_oneof![3 => 1usize..300, 1 => any::<usize>()],
                content_version in prop_oneof![1 => 0u32..1000, 1 => any::<u32>(), 1 => u32::MAX - 3..=u32::MAX],
                policy_version in prop_oneof![1 => 0u32..1000, 1 => any::<u32>()],
                behind in 0u32..3,
                updates in prop_oneof![3 => Just(vec!["\"0..10\"".to_owned()]), 1 => proptest::collection::vec(prop_oneof![text().prop_map(|t| format!("{t:?}")), any::<i64>().prop_map(|n| n.to_string())], 0..4)],
                range in prop_oneof![3 => Just("0.0.0.0-255.255.255.255".to_owned()), 1 => text()],
                subnet in prop_oneof![3 => Just("192.168.2.0".to_owned()), 1 => text()],
                span in prop_oneof![3 => Just("1h".to_owned()), 1 => text()],
            ) {
                let synced = content_version.saturating_sub(behind);
                let file = format!(r#"
site_code = "PS1"
update_source_id = "{{C2D17964-BBDD-4339-B9F3-12D7205B39CC}}"
policy_id = "{{d0855677-b0a6-4e33-9bd5-7b0d06f0a2be}}"
content_version = {content_version}
policy_version = {policy_version}
catalog_size = {catalog_size}
[[boundary_group]]
name = "B"
subnets = [{subnet:?}]
ip_ranges = [{range:?}]
[[sup]]
name = "S"
boundary_groups = ["B"]
synced_version = {synced}
[[update_group]]
name = "G"
updates = [{updates}]
[[deployment]]
name = "D"
update_group = "G"
[summarization]
update_status = {span:?}
aged_after = {span:?}
"#, updates = updates.join(", "));
                match SiteFile::parse(&file).and_then(SiteFile::into_site) {
                    Ok(mut site) => {
                        let v = u64::from(site.content_version);
                        prop_assert_eq!(u64::from(site.sync(3, 1)), v + 1);
                        prop_assert_eq!(u64::from(site.sync(0, 0)), v + 2);
                    }
                    Err(SiteError::Invalid { key, why }) => prop_assert!(!key.is_empty() && !why.is_empty()),
                    Err(SiteError::Toml(why)) => prop_assert!(!why.is_empty()),
                }
            }
        }
    }
}
