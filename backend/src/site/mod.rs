//! The site: what WSyncMgr, the Policy Provider and the MP's location manager know.
//!
//! - [`file`](mod@file): the site file (TOML), read raw and validated into a [`Site`] with errors that
//!   name the key; [`Site::default_site`] is the site `backend serve` builds without one.
//! - [`catalog`]: the dense, deterministic update catalog and what a sync does to it.
//! - [`chain`]: what a sync sets off: WSyncMgr, SMSDBMON's `.STN` file, the Policy Provider's
//!   version bump, with the product's log lines.
//! - [`Site::locate`]: the WSUS location decision (boundary group by subnet, IP range or AD
//!   site; intranet or internet; only SUPs synced at or past the requested content version).
//! - Update groups and their deployments to collections, and the summarization schedules
//!   (flow.md §7).
//! - [`live`]: the site while the process runs: behind a lock, changed by syncs (WSyncMgr →
//!   SMSDBMON → Policy Provider, then saved), with the Policy Provider's own polling thread.
//! - [`persist`]: what syncs and migrations changed, kept in the data directory so a restart
//!   comes back to the same catalog.

pub mod catalog;
pub mod chain;
pub mod file;
pub mod live;
pub mod persist;

use std::net::Ipv4Addr;
use std::time::Duration;

use protocol::Guid;
use protocol::bodies::{
    ContentLocationReply, ContentLocationRequest, DpRecord, IpAddressInfo, LocationRecord, LocationSite,
    WsusLocationReply, WsusLocationRequest,
};

pub use catalog::{Catalog, Update};

/// A software update point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sup {
    pub name: String,
    /// Serves clients on the intranet.
    pub intranet: bool,
    /// Serves clients on the internet.
    pub internet: bool,
    /// Indexes into [`Site::boundary_groups`].
    pub boundary_groups: Vec<usize>,
    /// The content version this SUP has synchronized; `None` follows the site's.
    pub synced_version: Option<u32>,
}

/// A distribution point: where clients in its boundary groups download content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dp {
    /// Its FQDN, as content URLs name it.
    pub name: String,
    /// Indexes into [`Site::boundary_groups`].
    pub boundary_groups: Vec<usize>,
}

/// A boundary: what makes a client belong to a boundary group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boundary {
    /// An IP subnet, matched against the `SubnetAddress` the client reports.
    Subnet(Ipv4Addr),
    /// An inclusive IPv4 address range.
    Range(Ipv4Addr, Ipv4Addr),
    /// An Active Directory site (case-insensitive).
    AdSite(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundaryGroup {
    pub name: String,
    pub boundaries: Vec<Boundary>,
}

impl BoundaryGroup {
    /// Whether a client in `ad_site` with `ip_addresses` is in this group.
    fn contains(&self, ad_site: &str, ip_addresses: &[IpAddressInfo]) -> bool {
        self.boundaries.iter().any(|b| match b {
            Boundary::AdSite(site) => site.eq_ignore_ascii_case(ad_site),
            Boundary::Subnet(net) => {
                ip_addresses.iter().any(|ip| ip.subnet.parse::<Ipv4Addr>().is_ok_and(|s| s == *net))
            }
            Boundary::Range(lo, hi) => ip_addresses
                .iter()
                .filter_map(|ip| ip.address.parse::<Ipv4Addr>().ok())
                .any(|a| (*lo..=*hi).contains(&a)),
        })
    }
}

/// Where a client said it is (its last WSUS location request): what collections go by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub ad_site: Box<str>,
    /// Bit `g` set: the client is in boundary group `g` (a site has at most 64).
    pub boundary_groups: u64,
}

/// A software update group, the unit a deployment deploys. `GroupID` as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateGroup {
    pub id: u32,
    pub name: String,
    /// Dense catalog indexes, ascending.
    pub updates: Vec<usize>,
    /// Updates later syncs bring join this group (as an automatic deployment rule adds them).
    pub takes_new_updates: bool,
}

/// The clients a deployment targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collection {
    AllClients,
    /// Clients whose AD site is one of these (case-insensitive).
    AdSites(Vec<String>),
    /// Clients in any of these boundary groups (indexes into [`Site::boundary_groups`]).
    BoundaryGroups(Vec<usize>),
}

impl Collection {
    /// Whether a client at `location` (`None`: it never said) is a member.
    pub fn contains(&self, location: Option<&Location>) -> bool {
        match (self, location) {
            (Collection::AllClients, _) => true,
            (_, None) => false,
            (Collection::AdSites(sites), Some(l)) => sites.iter().any(|s| s.eq_ignore_ascii_case(&l.ad_site)),
            (Collection::BoundaryGroups(groups), Some(l)) => {
                groups.iter().any(|&g| g < 64 && l.boundary_groups & (1 << g) != 0)
            }
        }
    }
}

/// A deployment of one update group to one collection. `DeploymentID` as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: u32,
    pub name: String,
    /// Index into [`Site::update_groups`].
    pub group: usize,
    pub collection: Collection,
}

/// The summarization tasks' schedules and the aged-status limit, in site time (flow.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedules {
    pub update_status: Duration,
    pub update_group_status: Duration,
    pub assignment_compliance: Duration,
    pub migrate_update_status: Duration,
    pub delete_aged_status: Duration,
    /// Clients silent this long lose their status.
    pub aged_after: Duration,
}

impl Default for Schedules {
    fn default() -> Self {
        const HOUR: Duration = Duration::from_secs(3600);
        Schedules {
            update_status: HOUR,
            update_group_status: HOUR,
            assignment_compliance: HOUR,
            migrate_update_status: HOUR * 24,
            delete_aged_status: HOUR * 24,
            aged_after: HOUR * 24 * 90,
        }
    }
}

/// The site and its software-update configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub code: String,
    pub update_source_id: Guid,
    /// The content version of the last successful sync.
    pub content_version: u32,
    /// The UpdateSource policy, `{guid}` as the site writes it.
    pub policy_id: String,
    /// Major part of the policy version (`40` for `40.00`).
    pub policy_major: u32,
    pub sups: Vec<Sup>,
    pub dps: Vec<Dp>,
    pub boundary_groups: Vec<BoundaryGroup>,
    pub catalog: Catalog,
    pub update_groups: Vec<UpdateGroup>,
    pub deployments: Vec<Deployment>,
    pub schedules: Schedules,
    /// Superseded updates at or before this content version have had their status migrated
    /// off (SUM Migrate Update Status): they leave the summaries.
    pub migrated_through: u32,
    /// Every sync since the site file's state, as (new, superseded): with the file, it rebuilds
    /// the catalog after a restart.
    pub syncs: Vec<(usize, usize)>,
}

impl Site {
    /// The policy version as the product writes it: `40.00`.
    pub fn policy_version(&self) -> String {
        format!("{}.00", self.policy_major)
    }

    /// The content version `sup` has synchronized.
    pub fn synced_version(&self, sup: &Sup) -> u32 {
        sup.synced_version.unwrap_or(self.content_version)
    }

    /// Where `req` says its client is: its AD site and the boundary groups that contain it.
    pub fn location_of(&self, req: &WsusLocationRequest) -> Location {
        self.location_at(&req.ad_site, &req.ip_addresses)
    }

    /// Where a client in `ad_site` with these addresses is: its boundary groups.
    pub fn location_at(&self, ad_site: &str, ip_addresses: &[IpAddressInfo]) -> Location {
        let boundary_groups = self
            .boundary_groups
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, g)| g.contains(ad_site, ip_addresses))
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        Location { ad_site: ad_site.into(), boundary_groups }
    }

    /// Whether update `index` has left the summaries: superseded by a sync whose status
    /// migration has run.
    pub fn is_migrated(&self, index: usize) -> bool {
        self.catalog
            .updates()
            .get(index)
            .and_then(|u| u.superseded_by)
            .is_some_and(|(_, at)| at <= self.migrated_through)
    }

    /// The WSUS location reply for `req`, with URLs pointing back at `base_url`
    /// (`http://127.0.0.1:8080`), one record per eligible SUP in name order. A request for
    /// another UpdateSource, or from a client in no boundary group, gets no records.
    pub fn locate(&self, req: &WsusLocationRequest, base_url: &str) -> WsusLocationReply {
        let groups = self.groups_of(&req.ad_site, &req.ip_addresses);
        let mut sups: Vec<&Sup> = if req.content_id != self.update_source_id {
            Vec::new()
        } else {
            self.sups
                .iter()
                .filter(|s| if req.on_internet { s.internet } else { s.intranet })
                .filter(|s| s.boundary_groups.iter().any(|g| groups.contains(g)))
                .filter(|s| self.synced_version(s) >= req.content_version)
                .collect()
        };
        sups.sort_by(|a, b| a.name.cmp(&b.name));
        let records = sups
            .iter()
            .map(|s| LocationRecord {
                wsus_url: format!("{}/wsus/{}", base_url.trim_end_matches('/'), s.name),
                server_name: s.name.clone(),
                version: self.synced_version(s),
            })
            .collect();
        WsusLocationReply { sites: vec![LocationSite { site_code: self.code.clone(), records }] }
    }

    /// The boundary groups a client in `ad_site` with `ips` is in.
    fn groups_of(&self, ad_site: &str, ips: &[IpAddressInfo]) -> Vec<usize> {
        (0..self.boundary_groups.len()).filter(|&g| self.boundary_groups[g].contains(ad_site, ips)).collect()
    }

    /// Where `req`'s content is: the DPs in the client's boundary groups (`LOCAL`), by name.
    /// A client in none of them gets an empty list, as from a site without fallback. The URLs
    /// name the DPs; this server does not serve content.
    pub fn content_locations(&self, req: &ContentLocationRequest) -> ContentLocationReply {
        let groups = self.groups_of(&req.ad_site, &req.ip_addresses);
        let content = req.package_id.strip_prefix("UID:").unwrap_or(&req.package_id);
        let mut dps: Vec<&Dp> =
            self.dps.iter().filter(|d| d.boundary_groups.iter().any(|g| groups.contains(g))).collect();
        dps.sort_by(|a, b| a.name.cmp(&b.name));
        let records = dps
            .iter()
            .map(|d| {
                let subnets = d
                    .boundary_groups
                    .iter()
                    .filter_map(|&g| self.boundary_groups.get(g))
                    .flat_map(|g| &g.boundaries)
                    .filter_map(|b| match b {
                        Boundary::Subnet(net) => Some(net.to_string()),
                        _ => None,
                    })
                    .collect();
                DpRecord {
                    url: format!("http://{}/SMS_DP_SMSPKG$/{content}.{}", d.name, req.version),
                    signature: format!("http://{}/SMS_DP_SMSSIG$/{content}.{}.tar", d.name, req.version),
                    ad_site: req.ad_site.clone(),
                    subnets,
                    version: 9128,
                    server: d.name.clone(),
                    locality: "LOCAL".into(),
                }
            })
            .collect();
        ContentLocationReply { site_code: self.code.clone(), records }
    }

    /// A SUP synchronization (WSyncMgr): the content version rises by one and the catalog grows
    /// by `new` updates, `superseded` of the current ones being replaced. Returns the new version.
    /// The policy version is the Policy Provider's to bump, once it sees the STN file.
    /// Groups that take new updates get this sync's.
    pub fn sync(&mut self, new: usize, superseded: usize) -> u32 {
        self.content_version += 1;
        let (added, _) = self.catalog.sync(self.content_version, new, superseded);
        for g in self.update_groups.iter_mut().filter(|g| g.takes_new_updates) {
            g.updates.extend_from_slice(&added);
        }
        self.syncs.push((new, superseded));
        self.content_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bodies::IpAddressInfo;

    fn request(site: &Site, subnet: &str, address: &str, ad_site: &str) -> WsusLocationRequest {
        WsusLocationRequest {
            content_id: site.update_source_id,
            content_version: site.content_version,
            site_code: site.code.clone(),
            on_internet: false,
            ad_site: ad_site.into(),
            forest: "CONTOSO.COM".into(),
            domain: "CONTOSO.COM".into(),
            ip_addresses: vec![IpAddressInfo { subnet: subnet.into(), address: address.into() }],
        }
    }

    fn names(reply: &WsusLocationReply) -> Vec<&str> {
        reply.records().map(|r| r.server_name.as_str()).collect()
    }

    fn site() -> Site {
        file::SiteFile::parse(
            r#"
            site_code = "PS1"
            update_source_id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"
            content_version = 38
            catalog_size = 20
            [[boundary_group]]
            name = "HQ"
            subnets = ["192.168.2.0"]
            [[boundary_group]]
            name = "Branch"
            ip_ranges = ["10.1.0.1-10.1.255.254"]
            ad_sites = ["BRANCH-SITE"]
            [[sup]]
            name = "SUPB"
            boundary_groups = ["HQ", "Branch"]
            internet = true
            [[sup]]
            name = "SUPA"
            boundary_groups = ["HQ"]
            [[sup]]
            name = "SUPLAG"
            boundary_groups = ["Branch"]
            synced_version = 37
            "#,
        )
        .unwrap()
        .into_site()
        .unwrap()
    }

    #[test]
    fn boundary_groups_by_subnet_range_and_ad_site() {
        let s = site();
        let base = "http://127.0.0.1:8080";
        let hq = s.locate(&request(&s, "192.168.2.0", "192.168.2.62", "CM12-R2-PS1"), base);
        assert_eq!(names(&hq), ["SUPA", "SUPB"], "name order, stable");
        assert_eq!(hq.sites[0].site_code, "PS1");
        assert_eq!(hq.sites[0].records[0].wsus_url, "http://127.0.0.1:8080/wsus/SUPA");
        assert_eq!(hq.sites[0].records[0].version, 38);
        // Branch by address range; the lagging SUP is left out at version 38 but offered at 37.
        let mut branch = request(&s, "10.1.4.0", "10.1.4.9", "");
        assert_eq!(names(&s.locate(&branch, base)), ["SUPB"]);
        branch.content_version = 37;
        assert_eq!(names(&s.locate(&branch, base)), ["SUPB", "SUPLAG"]);
        // Branch by AD site, any case.
        assert_eq!(names(&s.locate(&request(&s, "172.16.0.0", "172.16.0.5", "branch-site"), base)), ["SUPB"]);
        // Nowhere: no records.
        assert!(names(&s.locate(&request(&s, "172.16.0.0", "172.16.0.5", "X"), base)).is_empty());
    }

    #[test]
    fn internet_clients_and_unknown_update_sources() {
        let s = site();
        let mut req = request(&s, "192.168.2.0", "192.168.2.62", "");
        req.on_internet = true;
        assert_eq!(names(&s.locate(&req, "http://x")), ["SUPB"]);
        req.on_internet = false;
        req.content_id = Guid(1);
        assert!(names(&s.locate(&req, "http://x")).is_empty());
    }

    #[test]
    fn a_sync_moves_the_content_version_and_the_sups_with_it() {
        let mut s = site();
        assert_eq!(s.sync(5, 2), 39);
        assert_eq!(s.catalog.len(), 25);
        let req = request(&s, "192.168.2.0", "192.168.2.62", "");
        let reply = s.locate(&req, "http://x");
        assert!(reply.records().all(|r| r.version == 39));
        assert_eq!(s.policy_version(), "40.00", "the Policy Provider bumps it, not the sync");
    }
}
