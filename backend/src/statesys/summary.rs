//! The counting behind the summarization tasks (flow.md §7), sharded and incremental.
//!
//! A [`SummaryPlan`] is what the site asks to count: the updates still in the summaries, the update
//! groups, the deployments and their collections. Each shard of the store keeps a
//! `ShardSummary`: its partial counts ([`Tally`]) under the plan it last counted with, each
//! counted client's per-group tallies, and what changed since: clients (new, retired, moved)
//! and states whose summary bucket moved (marked as records apply, using a byte of
//! [`UpdateState`]'s padding for "bucket at the last count" and "marked"). Summarizing a shard
//! then takes back and re-adds only the changed clients and moves only the changed states, so a
//! run after a small change costs in proportion to the change; a new plan (a sync, a migration,
//! a restart) or too many marks recount the shard. The sum over shards is the site's answer.
//!
//! Buckets: a state is unknown (never reported, or state 0), not required (1), required (2) or
//! installed (3). A client is compliant with an update group when every update in it is
//! installed or not required; any required update makes it non-compliant; otherwise any unknown
//! one makes it unknown.

use super::state::{Client, UpdateState};
use crate::site::{Collection, Site};

pub const UNKNOWN: usize = 0;
pub const NOT_REQUIRED: usize = 1;
pub const REQUIRED: usize = 2;
pub const INSTALLED: usize = 3;

/// Group and deployment status, as indexes into their counts.
pub const COMPLIANT: usize = 0;
pub const NON_COMPLIANT: usize = 1;
pub const STATUS_UNKNOWN: usize = 2;

const MARKED: u8 = 0x80;
const BUCKET: u8 = 0x03;

/// The summary bucket of a state.
pub fn bucket(e: &UpdateState) -> usize {
    if !e.is_known() {
        return UNKNOWN;
    }
    match e.state {
        1 => NOT_REQUIRED,
        2 => REQUIRED,
        3 => INSTALLED,
        _ => UNKNOWN,
    }
}

/// A client's status for a group from its counts of required and unknown updates in it.
fn status(required: u32, unknown: u32) -> usize {
    if required > 0 {
        NON_COMPLIANT
    } else if unknown > 0 {
        STATUS_UNKNOWN
    } else {
        COMPLIANT
    }
}

/// One deployment as the summarizer counts it.
#[derive(Debug, Clone)]
pub struct PlannedDeployment {
    pub group: usize,
    pub collection: Collection,
    /// Where this deployment's per-update cells start in [`Tally::cells`] (one per update of
    /// its group, in the group's order).
    pub first_cell: usize,
}

/// What to count: derived from the site whenever its catalog, groups or migrations change.
#[derive(Debug, Clone)]
pub struct SummaryPlan {
    /// Identifies the plan; a shard counted under another epoch is recounted.
    pub epoch: u64,
    /// Catalog size: updates at indexes past it are not counted (yet).
    pub updates: usize,
    /// Per update: still in the summaries (not migrated).
    pub active: Vec<bool>,
    /// Per group: its active updates.
    pub groups: Vec<Vec<u32>>,
    pub deployments: Vec<PlannedDeployment>,
    pub cells: usize,
    /// Per update: the groups holding it.
    groups_of: Vec<Vec<u32>>,
    /// Per group: the deployments of it.
    deployments_of_group: Vec<Vec<u32>>,
    /// Per update: (deployment, cell) for each deployment of a group holding it.
    cells_of: Vec<Vec<(u32, u32)>>,
}

impl SummaryPlan {
    pub fn new(site: &Site, epoch: u64) -> SummaryPlan {
        let updates = site.catalog.len();
        let active: Vec<bool> = (0..updates).map(|i| !site.is_migrated(i)).collect();
        let groups: Vec<Vec<u32>> = site
            .update_groups
            .iter()
            .map(|g| g.updates.iter().filter(|&&u| u < updates && active[u]).map(|&u| u as u32).collect())
            .collect();
        let mut groups_of = vec![Vec::new(); updates];
        for (g, members) in groups.iter().enumerate() {
            for &u in members {
                groups_of[u as usize].push(g as u32);
            }
        }
        let mut deployments = Vec::new();
        let mut deployments_of_group = vec![Vec::new(); groups.len()];
        let mut cells_of = vec![Vec::new(); updates];
        let mut cells = 0;
        for (d, dep) in site.deployments.iter().enumerate() {
            deployments_of_group[dep.group].push(d as u32);
            for (k, &u) in groups[dep.group].iter().enumerate() {
                cells_of[u as usize].push((d as u32, (cells + k) as u32));
            }
            deployments.push(PlannedDeployment {
                group: dep.group,
                collection: dep.collection.clone(),
                first_cell: cells,
            });
            cells += groups[dep.group].len();
        }
        SummaryPlan {
            epoch,
            updates,
            active,
            groups,
            deployments,
            cells,
            groups_of,
            deployments_of_group,
            cells_of,
        }
    }

    fn words(&self) -> usize {
        self.deployments.len().div_ceil(64)
    }
}

/// Counts, for a shard or (summed) for the site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Clients counted (known and not retired).
    pub clients: i64,
    /// Per update, clients by bucket.
    pub updates: Vec<[i64; 4]>,
    /// Per group, clients by status.
    pub groups: Vec<[i64; 3]>,
    /// Per deployment: targeted, then targeted clients by status.
    pub deployments: Vec<[i64; 4]>,
    /// Per (deployment, update of its group): targeted clients by bucket.
    pub cells: Vec<[i64; 4]>,
}

impl Tally {
    pub fn zero(plan: &SummaryPlan) -> Tally {
        Tally {
            clients: 0,
            updates: vec![[0; 4]; plan.updates],
            groups: vec![[0; 3]; plan.groups.len()],
            deployments: vec![[0; 4]; plan.deployments.len()],
            cells: vec![[0; 4]; plan.cells],
        }
    }

    /// Adds `o` (counted under the same plan) into `self`.
    pub fn add(&mut self, o: &Tally) {
        fn sum<const N: usize>(a: &mut [[i64; N]], b: &[[i64; N]]) {
            for (x, y) in a.iter_mut().zip(b) {
                for k in 0..N {
                    x[k] += y[k];
                }
            }
        }
        self.clients += o.clients;
        sum(&mut self.updates, &o.updates);
        sum(&mut self.groups, &o.groups);
        sum(&mut self.deployments, &o.deployments);
        sum(&mut self.cells, &o.cells);
    }
}

/// A shard's part of the summarization (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct ShardSummary {
    /// The plan the tally was counted under; 0: never counted.
    epoch: u64,
    tally: Tally,
    /// Per client slot: counted at the last summarization.
    counted: Vec<bool>,
    /// Per client slot, `words` words: the deployments that targeted it then.
    targets: Vec<u64>,
    /// Per client slot and group: (required, unknown) updates of the group, as last counted.
    group_counts: Vec<[u32; 2]>,
    /// Per client slot: already in `changed_clients`.
    client_marked: Vec<bool>,
    changed_clients: Vec<u32>,
    /// (slot, update) of states whose bucket moved since the last summarization.
    changed_states: Vec<(u32, u32)>,
    /// Too many changes to list: recount the shard.
    overflow: bool,
}

impl ShardSummary {
    /// Marks a client whose standing changed: new, retired, back, or moved.
    pub(super) fn client_changed(&mut self, slot: usize) {
        if self.client_marked.len() <= slot {
            self.client_marked.resize(slot + 1, false);
        }
        if !self.client_marked[slot] {
            self.client_marked[slot] = true;
            self.changed_clients.push(slot as u32);
        }
    }

    /// Marks a state that may have changed bucket since the last summarization.
    pub(super) fn state_changed(&mut self, slot: usize, index: usize, e: &mut UpdateState) {
        if self.overflow || e.seen & MARKED != 0 || bucket(e) as u8 == e.seen & BUCKET {
            return;
        }
        e.seen |= MARKED;
        // The list holds at most one entry per eight states (and no less than 64 Ki); past
        // that a recount is as cheap.
        if self.changed_states.len() >= (self.counted.len() * self.tally.updates.len() / 8).max(1 << 16) {
            self.overflow = true;
            self.changed_states = Vec::new();
        } else {
            self.changed_states.push((slot as u32, index as u32));
        }
    }

    /// The next summarization recounts this shard.
    pub(super) fn invalidate(&mut self) {
        self.epoch = 0;
    }
}

/// Bucket of `slot`'s update `u`: now, or as last summarized.
fn now_at(rows: &[UpdateState], stride: usize, slot: usize, u: usize) -> usize {
    if u < stride { bucket(&rows[slot * stride + u]) } else { UNKNOWN }
}

fn seen_at(rows: &[UpdateState], stride: usize, slot: usize, u: usize) -> usize {
    if u < stride { (rows[slot * stride + u].seen & BUCKET) as usize } else { UNKNOWN }
}

impl ShardSummary {
    /// What this shard counts, as of its last update.
    pub(super) fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Brings the shard's partial summary up to date with `plan`: `clients` are the shard's
    /// clients and `rows` their states, `stride` to a row.
    pub(super) fn update(
        &mut self,
        clients: &[Client],
        rows: &mut [UpdateState],
        stride: usize,
        plan: &SummaryPlan,
    ) {
        let s = self;
        let n = clients.len();
        let words = plan.words();
        let groups = plan.groups.len();

        if s.epoch != plan.epoch || s.overflow {
            s.tally = Tally::zero(plan);
            s.counted = vec![false; n];
            s.targets = vec![0; n * words];
            s.group_counts = vec![[0, 0]; n * groups];
            s.client_marked = vec![false; n];
            s.changed_clients.clear();
            s.changed_states.clear();
            s.overflow = false;
            s.epoch = plan.epoch;
            for (slot, c) in clients.iter().enumerate() {
                add_client(s, plan, slot, !c.retired, c.location.as_ref(), |u| now_at(rows, stride, slot, u));
            }
            for e in rows.iter_mut() {
                e.seen = bucket(e) as u8;
            }
            return;
        }

        s.counted.resize(n, false);
        s.targets.resize(n * words, 0);
        s.group_counts.resize(n * groups, [0, 0]);
        s.client_marked.resize(n, false);
        // Clients first: take back what they counted (from the buckets as last seen), add what
        // they count now, and settle their states.
        let changed = std::mem::take(&mut s.changed_clients);
        for &slot in &changed {
            let slot = slot as usize;
            s.client_marked[slot] = false;
            take_back_client(s, plan, slot, |u| seen_at(rows, stride, slot, u));
            let c = &clients[slot];
            add_client(s, plan, slot, !c.retired, c.location.as_ref(), |u| now_at(rows, stride, slot, u));
            for e in &mut rows[slot * stride..(slot + 1) * stride] {
                e.seen = bucket(e) as u8;
            }
        }
        s.changed_clients = changed;
        s.changed_clients.clear();
        // Then single states.
        let states = std::mem::take(&mut s.changed_states);
        for &(slot, u) in &states {
            let (slot, u) = (slot as usize, u as usize);
            let e = &mut rows[slot * stride + u];
            if e.seen & MARKED == 0 {
                continue; // settled with its client above
            }
            let (was, now) = ((e.seen & BUCKET) as usize, bucket(e));
            e.seen = now as u8;
            if was != now && s.counted[slot] && u < plan.updates {
                move_state(s, plan, slot, u, was, now);
            }
        }
        s.changed_states = states;
        s.changed_states.clear();
    }
}

fn targets(s: &ShardSummary, plan: &SummaryPlan, slot: usize, d: usize) -> bool {
    s.targets[slot * plan.words() + d / 64] & (1 << (d % 64)) != 0
}

/// Adds one client's counts (`bucket_of(update)`), recording what it counted.
fn add_client(
    s: &mut ShardSummary,
    plan: &SummaryPlan,
    slot: usize,
    counted: bool,
    location: Option<&crate::site::Location>,
    bucket_of: impl Fn(usize) -> usize,
) {
    s.counted[slot] = counted;
    let words = plan.words();
    s.targets[slot * words..(slot + 1) * words].fill(0);
    let groups = plan.groups.len();
    s.group_counts[slot * groups..(slot + 1) * groups].fill([0, 0]);
    if !counted {
        return;
    }
    let t = &mut s.tally;
    t.clients += 1;
    for u in (0..plan.updates).filter(|&u| plan.active[u]) {
        t.updates[u][bucket_of(u)] += 1;
    }
    for (g, members) in plan.groups.iter().enumerate() {
        let mut counts = [0u32; 2];
        for &u in members {
            match bucket_of(u as usize) {
                REQUIRED => counts[0] += 1,
                UNKNOWN => counts[1] += 1,
                _ => {}
            }
        }
        s.group_counts[slot * groups + g] = counts;
        t.groups[g][status(counts[0], counts[1])] += 1;
    }
    for (d, dep) in plan.deployments.iter().enumerate() {
        if !dep.collection.contains(location) {
            continue;
        }
        s.targets[slot * words + d / 64] |= 1 << (d % 64);
        let [required, unknown] = s.group_counts[slot * groups + dep.group];
        t.deployments[d][0] += 1;
        t.deployments[d][1 + status(required, unknown)] += 1;
        for (k, &u) in plan.groups[dep.group].iter().enumerate() {
            t.cells[dep.first_cell + k][bucket_of(u as usize)] += 1;
        }
    }
}

/// Takes back what one client counted at the last summarization (`bucket_of`: its buckets then).
fn take_back_client(
    s: &mut ShardSummary,
    plan: &SummaryPlan,
    slot: usize,
    bucket_of: impl Fn(usize) -> usize,
) {
    if !s.counted[slot] {
        return;
    }
    let groups = plan.groups.len();
    let t = &mut s.tally;
    t.clients -= 1;
    for u in (0..plan.updates).filter(|&u| plan.active[u]) {
        t.updates[u][bucket_of(u)] -= 1;
    }
    for g in 0..groups {
        let [required, unknown] = s.group_counts[slot * groups + g];
        t.groups[g][status(required, unknown)] -= 1;
    }
    for (d, dep) in plan.deployments.iter().enumerate() {
        if s.targets[slot * plan.words() + d / 64] & (1 << (d % 64)) == 0 {
            continue;
        }
        let [required, unknown] = s.group_counts[slot * groups + dep.group];
        t.deployments[d][0] -= 1;
        t.deployments[d][1 + status(required, unknown)] -= 1;
        for (k, &u) in plan.groups[dep.group].iter().enumerate() {
            t.cells[dep.first_cell + k][bucket_of(u as usize)] -= 1;
        }
    }
    s.counted[slot] = false;
}

/// One counted client's state of update `u` moved from bucket `was` to `now`.
fn move_state(s: &mut ShardSummary, plan: &SummaryPlan, slot: usize, u: usize, was: usize, now: usize) {
    if plan.active[u] {
        s.tally.updates[u][was] -= 1;
        s.tally.updates[u][now] += 1;
    }
    let groups = plan.groups.len();
    for &g in &plan.groups_of[u] {
        let g = g as usize;
        let counts = &mut s.group_counts[slot * groups + g];
        let before = status(counts[0], counts[1]);
        match was {
            REQUIRED => counts[0] -= 1,
            UNKNOWN => counts[1] -= 1,
            _ => {}
        }
        match now {
            REQUIRED => counts[0] += 1,
            UNKNOWN => counts[1] += 1,
            _ => {}
        }
        let after = status(counts[0], counts[1]);
        if before != after {
            s.tally.groups[g][before] -= 1;
            s.tally.groups[g][after] += 1;
            for &d in &plan.deployments_of_group[g] {
                if targets(s, plan, slot, d as usize) {
                    s.tally.deployments[d as usize][1 + before] -= 1;
                    s.tally.deployments[d as usize][1 + after] += 1;
                }
            }
        }
    }
    for &(d, cell) in &plan.cells_of[u] {
        if targets(s, plan, slot, d as usize) {
            s.tally.cells[cell as usize][was] -= 1;
            s.tally.cells[cell as usize][now] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Deployment, Location, UpdateGroup};
    use crate::statesys::state::{Record, Target};
    use crate::statesys::store::Store;
    use proptest::prelude::*;
    use protocol::Guid;

    fn site(updates: usize, groups: Vec<Vec<usize>>, deployments: Vec<(usize, Collection)>) -> Site {
        let mut site = Site::default_site();
        site.catalog = crate::site::Catalog::generate(3, updates, site.content_version);
        site.update_groups = groups
            .into_iter()
            .enumerate()
            .map(|(i, updates)| UpdateGroup {
                id: i as u32,
                name: format!("G{i}"),
                updates,
                takes_new_updates: false,
            })
            .collect();
        site.deployments = deployments
            .into_iter()
            .enumerate()
            .map(|(i, (group, collection))| Deployment {
                id: i as u32,
                name: format!("D{i}"),
                group,
                collection,
            })
            .collect();
        site
    }

    fn set(store: &Store, client: u128, time: i64, states: &[(u32, u8)]) {
        let records: Vec<Record> = states
            .iter()
            .enumerate()
            .map(|(k, &(index, state))| Record {
                time,
                serial: k as u64,
                target: Target::Update { index, state },
            })
            .collect();
        store.apply(Guid(client), "PC", &records);
    }

    /// The counts recounted the slow, obvious way.
    fn brute(store: &Store, plan: &SummaryPlan) -> Tally {
        let mut t = Tally::zero(plan);
        store.for_each(|c, row| {
            if c.retired {
                return;
            }
            let b = |u: usize| row.get(u).map_or(UNKNOWN, bucket);
            t.clients += 1;
            for u in (0..plan.updates).filter(|&u| plan.active[u]) {
                t.updates[u][b(u)] += 1;
            }
            let group_status = |g: usize| {
                let members = &plan.groups[g];
                if members.iter().any(|&u| b(u as usize) == REQUIRED) {
                    NON_COMPLIANT
                } else if members.iter().any(|&u| b(u as usize) == UNKNOWN) {
                    STATUS_UNKNOWN
                } else {
                    COMPLIANT
                }
            };
            for g in 0..plan.groups.len() {
                t.groups[g][group_status(g)] += 1;
            }
            for (d, dep) in plan.deployments.iter().enumerate() {
                if dep.collection.contains(c.location.as_ref()) {
                    t.deployments[d][0] += 1;
                    t.deployments[d][1 + group_status(dep.group)] += 1;
                    for (k, &u) in plan.groups[dep.group].iter().enumerate() {
                        t.cells[dep.first_cell + k][b(u as usize)] += 1;
                    }
                }
            }
        });
        t
    }

    #[test]
    fn known_answers_with_unknowns() {
        // Updates 0..4; group 0 = {0, 1}, group 1 = {2, 3}; D0: group 0 to everyone, D1: group 1
        // to AD site HQ.
        let site = site(
            4,
            vec![vec![0, 1], vec![2, 3]],
            vec![(0, Collection::AllClients), (1, Collection::AdSites(vec!["HQ".into()]))],
        );
        let plan = SummaryPlan::new(&site, 1);
        let store = Store::new(2, 4);
        set(&store, 1, 10, &[(0, 3), (1, 1), (2, 2), (3, 3)]); // G0 compliant, G1 non-compliant
        set(&store, 2, 10, &[(0, 3), (1, 0), (2, 3), (3, 3)]); // G0 unknown (state 0), G1 compliant
        set(&store, 3, 10, &[(0, 2)]); // G0 non-compliant, G1 unknown (no state)
        store.discover(Guid(4), "NEW", Some(Location { ad_site: "hq".into(), boundary_groups: 0 }), 10);
        store.discover(Guid(1), "PC", Some(Location { ad_site: "HQ".into(), boundary_groups: 1 }), 10);
        let t = store.summarize(&plan, 2);
        assert_eq!(t.clients, 4);
        // [unknown, not required, required, installed]
        assert_eq!(t.updates, [[1, 0, 1, 2], [3, 1, 0, 0], [2, 0, 1, 1], [2, 0, 0, 2]]);
        // [compliant, non-compliant, unknown]
        assert_eq!(t.groups, [[1, 1, 2], [1, 1, 2]]);
        // [targeted, compliant, non-compliant, unknown]: D1 targets clients 1 and 4 (AD site
        // in any case).
        assert_eq!(t.deployments, [[4, 1, 1, 2], [2, 0, 1, 1]]);
        assert_eq!(t.cells, [[1, 0, 1, 2], [3, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]]);
        assert_eq!(t, brute(&store, &plan));

        // A change: client 3 installs update 0 and is now unknown (update 1 has no state).
        set(&store, 3, 20, &[(0, 3), (1, 1)]);
        let t = store.summarize(&plan, 1);
        assert_eq!(t.groups[0], [2, 0, 2]);
        assert_eq!(t, brute(&store, &plan));
        // Aged: everyone but client 3 falls out of the counts.
        assert_eq!(store.retire_aged(15), 3);
        let t = store.summarize(&plan, 2);
        assert_eq!((t.clients, t.groups[0], t.deployments[1]), (1, [1, 0, 0], [0, 0, 0, 0]));
        // Reporting again brings a client back.
        set(&store, 2, 30, &[(1, 1)]);
        assert_eq!(store.summarize(&plan, 2), brute(&store, &plan));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Report { client: u128, time: i64, states: Vec<(u32, u8)> },
        Discover { client: u128, site: u8, groups: u64 },
        Age { cutoff: i64 },
        Migrate { update: usize },
        Summarize { threads: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u128..24, 0i64..40, prop::collection::vec((0u32..10, 0u8..5), 1..8))
                .prop_map(|(client, time, states)| Op::Report { client, time, states }),
            2 => (0u128..24, 0u8..3, 0u64..4).prop_map(|(client, site, groups)| Op::Discover { client, site, groups }),
            1 => (0i64..20).prop_map(|cutoff| Op::Age { cutoff }),
            1 => (0usize..10).prop_map(|update| Op::Migrate { update }),
            2 => (1usize..4).prop_map(|threads| Op::Summarize { threads }),
        ]
    }

    proptest! {
        /// Whatever happens between runs, an incremental run equals a brute-force recount, and
        /// a recount under a new plan equals both.
        #[test]
        fn incremental_equals_full_equals_brute_force(
            groups in prop::collection::vec(prop::collection::vec(0usize..10, 0..6), 0..4),
            collections in prop::collection::vec((0usize..4, 0u8..3), 0..4),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let groups: Vec<Vec<usize>> = groups.into_iter().map(|mut g| { g.sort_unstable(); g.dedup(); g }).collect();
            let deployments: Vec<(usize, Collection)> = if groups.is_empty() { Vec::new() } else {
                collections.into_iter().map(|(g, kind)| (g % groups.len(), match kind {
                    0 => Collection::AllClients,
                    1 => Collection::AdSites(vec!["S1".into()]),
                    _ => Collection::BoundaryGroups(vec![1]),
                })).collect()
            };
            let mut site = site(10, groups, deployments);
            let store = Store::new(2, 6); // rows widen as updates 6..10 report
            let mut epoch = 1;
            let mut plan = SummaryPlan::new(&site, epoch);
            for op in ops {
                match op {
                    Op::Report { client, time, states } => set(&store, client, time, &states),
                    Op::Discover { client, site, groups } => {
                        let location = Location { ad_site: format!("S{site}").into(), boundary_groups: groups };
                        store.discover(Guid(client), "PC", Some(location), 10);
                    }
                    Op::Age { cutoff } => { store.retire_aged(cutoff); }
                    Op::Migrate { update } => {
                        // A sync supersedes the `update % 3 + 1` oldest current updates; SUM
                        // Migrate Update Status then moves their status off.
                        site.content_version += 1;
                        let (_, replaced) = site.catalog.sync(site.content_version, 1, update % 3 + 1);
                        site.migrated_through = site.content_version;
                        store.clear_updates(&replaced);
                        epoch += 1;
                        plan = SummaryPlan::new(&site, epoch);
                    }
                    Op::Summarize { threads } => {
                        let incremental = store.summarize(&plan, threads);
                        prop_assert_eq!(&incremental, &brute(&store, &plan));
                    }
                }
            }
            let incremental = store.summarize(&plan, 2);
            prop_assert_eq!(&incremental, &brute(&store, &plan));
            epoch += 1;
            let full = store.summarize(&SummaryPlan { epoch, ..plan.clone() }, 2);
            prop_assert_eq!(&incremental, &full);
        }
    }
}
