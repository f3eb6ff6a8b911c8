//! StateSys's software-update summarization tasks (flow.md §7) and the views they publish.
//!
//! | task | does | rows (the `status M` of its log line) |
//! |---|---|---|
//! | SUM Migrate Update Status | moves status off updates a sync superseded | states moved |
//! | SUM Delete Aged Status | drops the status of clients silent past the age limit | clients dropped |
//! | SUM Update Status Summarizer | per-update counts | updates |
//! | SUM Update Group Status Summarizer | per-group compliance | groups |
//! | SUM Assignment Compliance Evaluator | per-deployment and deployment × update compliance | deployments + their update rows |
//!
//! The three summarizers share one pass over the store ([`Store::summarize`], incremental) and
//! each publishes its own view, stamped with its run's time. Views are immutable snapshots
//! behind an `Arc`: a query clones the `Arc` and never waits for the store or a running task.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use protocol::{GuidStyle, Timestamp};
use serde::{Deserialize, Serialize};

use super::store::Store;
use super::summary::{
    COMPLIANT, INSTALLED, NON_COMPLIANT, NOT_REQUIRED, REQUIRED, STATUS_UNKNOWN, SummaryPlan, Tally, UNKNOWN,
};
use crate::logs::ComponentLog;
use crate::site::live::LiveSite;
use crate::site::{Schedules, Site};

/// One summarization task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    MigrateUpdateStatus,
    DeleteAgedStatus,
    UpdateStatus,
    UpdateGroupStatus,
    AssignmentCompliance,
}

impl Task {
    /// Every task, in the order a run of all of them takes (status moves and drops first, so
    /// the counts reflect them).
    pub const ALL: [Task; 5] = [
        Task::MigrateUpdateStatus,
        Task::DeleteAgedStatus,
        Task::UpdateStatus,
        Task::UpdateGroupStatus,
        Task::AssignmentCompliance,
    ];

    /// How many tasks there are.
    pub const COUNT: usize = Task::ALL.len();

    /// The three that count and publish views (what a start runs, so the views are not empty
    /// until the first scheduled run).
    pub const SUMMARIZERS: [Task; 3] =
        [Task::UpdateStatus, Task::UpdateGroupStatus, Task::AssignmentCompliance];

    /// The product's name for the task.
    pub fn name(self) -> &'static str {
        match self {
            Task::MigrateUpdateStatus => "SUM Migrate Update Status",
            Task::DeleteAgedStatus => "SUM Delete Aged Status",
            Task::UpdateStatus => "SUM Update Status Summarizer",
            Task::UpdateGroupStatus => "SUM Update Group Status Summarizer",
            Task::AssignmentCompliance => "SUM Assignment Compliance Evaluator",
        }
    }

    /// A task by its name, in any case.
    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// How often the task runs, in site time.
    pub fn every(self, s: &Schedules) -> Duration {
        match self {
            Task::MigrateUpdateStatus => s.migrate_update_status,
            Task::DeleteAgedStatus => s.delete_aged_status,
            Task::UpdateStatus => s.update_status,
            Task::UpdateGroupStatus => s.update_group_status,
            Task::AssignmentCompliance => s.assignment_compliance,
        }
    }

    fn index(self) -> usize {
        Task::ALL.iter().position(|&t| t == self).unwrap_or(0)
    }
}

/// What one run of a task did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRun {
    pub task: Task,
    /// Site time the run started.
    pub at: Timestamp,
    pub rows: u64,
    pub duration: Duration,
}

fn percent(compliant: i64, total: i64) -> f64 {
    if total <= 0 { 0.0 } else { (compliant as f64 * 10_000.0 / total as f64).round() / 100.0 }
}

/// A row of `GET /api/v1/summary/updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSummary {
    #[serde(rename = "UpdateID")]
    pub update_id: String,
    #[serde(rename = "ArticleID")]
    pub article_id: String,
    #[serde(rename = "Title")]
    pub title: String,
    #[serde(rename = "NumTotal")]
    pub total: i64,
    #[serde(rename = "NumUnknown")]
    pub unknown: i64,
    #[serde(rename = "NumNotApplicable")]
    pub not_applicable: i64,
    #[serde(rename = "NumMissing")]
    pub missing: i64,
    #[serde(rename = "NumPresent")]
    pub present: i64,
    #[serde(rename = "PercentCompliant")]
    pub percent_compliant: f64,
    #[serde(rename = "LastSummarizationTime")]
    pub last_summarization_time: String,
}

/// A row of `GET /api/v1/summary/update-groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    #[serde(rename = "GroupID")]
    pub group_id: u32,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "NumTotal")]
    pub total: i64,
    #[serde(rename = "NumCompliant")]
    pub compliant: i64,
    #[serde(rename = "NumNonCompliant")]
    pub non_compliant: i64,
    #[serde(rename = "NumUnknown")]
    pub unknown: i64,
    #[serde(rename = "PercentCompliant")]
    pub percent_compliant: f64,
    #[serde(rename = "LastSummarizationTime")]
    pub last_summarization_time: String,
}

/// Per deployment × update counts, within a [`DeploymentSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentUpdateSummary {
    #[serde(rename = "UpdateID")]
    pub update_id: String,
    #[serde(rename = "ArticleID")]
    pub article_id: String,
    #[serde(rename = "NumPresent")]
    pub present: i64,
    #[serde(rename = "NumMissing")]
    pub missing: i64,
    #[serde(rename = "NumNotApplicable")]
    pub not_applicable: i64,
    #[serde(rename = "NumUnknown")]
    pub unknown: i64,
}

/// A row of `GET /api/v1/summary/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSummary {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: u32,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "GroupID")]
    pub group_id: u32,
    #[serde(rename = "NumTargeted")]
    pub targeted: i64,
    #[serde(rename = "NumCompliant")]
    pub compliant: i64,
    #[serde(rename = "NumNonCompliant")]
    pub non_compliant: i64,
    #[serde(rename = "NumUnknown")]
    pub unknown: i64,
    #[serde(rename = "PercentCompliant")]
    pub percent_compliant: f64,
    #[serde(rename = "LastSummarizationTime")]
    pub last_summarization_time: String,
    #[serde(rename = "Updates")]
    pub updates: Vec<DeploymentUpdateSummary>,
}

/// What the queries serve: each view as of its task's last run.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub updates: Arc<Vec<UpdateSummary>>,
    pub groups: Arc<Vec<GroupSummary>>,
    pub deployments: Arc<Vec<DeploymentSummary>>,
    /// Per task (in [`Task::ALL`] order), its last run.
    pub last_runs: [Option<TaskRun>; Task::COUNT],
}

impl Views {
    pub fn last_run(&self, task: Task) -> Option<TaskRun> {
        self.last_runs[task.index()]
    }
}

/// The plan in use and what it was built from.
struct Planned {
    plan: Arc<SummaryPlan>,
    /// (catalog size, migrated through, groups' and deployments' shape)
    key: (usize, u32, usize, usize),
}

/// Runs the tasks over a store and keeps their views.
pub struct Summarizer {
    store: Arc<Store>,
    log: Arc<ComponentLog>,
    pub threads: usize,
    planned: Mutex<Option<Planned>>,
    views: RwLock<Arc<Views>>,
}

impl std::fmt::Debug for Summarizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summarizer").field("threads", &self.threads).finish_non_exhaustive()
    }
}

impl Summarizer {
    pub fn new(store: Arc<Store>, log: Arc<ComponentLog>) -> Summarizer {
        Summarizer {
            store,
            log,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            planned: Mutex::new(None),
            views: RwLock::new(Arc::new(Views::default())),
        }
    }

    /// StateSys's log, where the tasks write.
    pub fn log(&self) -> &ComponentLog {
        &self.log
    }

    /// The views as of the last runs. Never waits for a run.
    pub fn views(&self) -> Arc<Views> {
        Arc::clone(&self.views.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The plan for the site as it is now (rebuilt when the site changed shape).
    fn plan(&self, site: &Site) -> Arc<SummaryPlan> {
        let key =
            (site.catalog.len(), site.migrated_through, site.update_groups.len(), site.deployments.len());
        let mut planned = self.planned.lock().unwrap_or_else(|p| p.into_inner());
        match &*planned {
            Some(p) if p.key == key => Arc::clone(&p.plan),
            previous => {
                let epoch = previous.as_ref().map_or(1, |p| p.plan.epoch + 1);
                let plan = Arc::new(SummaryPlan::new(site, epoch));
                *planned = Some(Planned { plan: Arc::clone(&plan), key });
                plan
            }
        }
    }

    /// Runs `tasks` (in [`Task::ALL`] order, each once) at site time `now`, logging each;
    /// returns what each did. `site` is changed only by a migration.
    pub fn run(&self, site: &LiveSite, tasks: &[Task], now: Timestamp) -> Vec<TaskRun> {
        let mut runs = Vec::new();
        let mut counted: Option<(Arc<SummaryPlan>, Tally)> = None;
        // The Update Status summarization counts convergence: who it shows for the first time.
        let visibility = tasks.contains(&Task::UpdateStatus).then(|| self.store.convergence().next_run());
        let mut moves = Vec::new();
        for task in Task::ALL.into_iter().filter(|t| tasks.contains(t)) {
            self.log.info(&format!("Started task '{}'", task.name()));
            let started = Instant::now();
            let rows = match task {
                Task::MigrateUpdateStatus => self.migrate(site),
                Task::DeleteAgedStatus => {
                    let age = site.read().schedules.aged_after;
                    self.store.retire_aged(now.0 - i64::try_from(age.as_micros()).unwrap_or(i64::MAX))
                }
                Task::UpdateStatus | Task::UpdateGroupStatus | Task::AssignmentCompliance => {
                    let site = site.read();
                    let (plan, tally) = counted.get_or_insert_with(|| {
                        let plan = self.plan(&site);
                        let tally;
                        (tally, moves) = self.store.summarize_counting(&plan, self.threads, visibility);
                        (plan, tally)
                    });
                    let rows = self.publish(task, &site, plan, tally, now);
                    if let (Task::UpdateStatus, Some(run)) = (task, visibility) {
                        self.store.convergence().published(run, &moves);
                    }
                    rows
                }
            };
            let duration = started.elapsed();
            self.log.info(&format!(
                "Task '{}' completed successfully after running for {} seconds, with status {rows}.",
                task.name(),
                duration.as_secs()
            ));
            let run = TaskRun { task, at: now, rows, duration };
            let mut views = self.views.write().unwrap_or_else(|p| p.into_inner());
            Arc::make_mut(&mut views).last_runs[task.index()] = Some(run);
            runs.push(run);
        }
        runs
    }

    /// SUM Migrate Update Status: status off every update superseded since the last migration.
    fn migrate(&self, site: &LiveSite) -> u64 {
        let mut moved = 0;
        let saved = site.change(|site| {
            let through = site.content_version;
            let superseded: Vec<usize> = (0..site.catalog.len())
                .filter(|&i| {
                    site.catalog.updates()[i]
                        .superseded_by
                        .is_some_and(|(_, at)| at > site.migrated_through && at <= through)
                })
                .collect();
            if superseded.is_empty() {
                return false;
            }
            moved = self.store.clear_updates(&superseded);
            site.migrated_through = through;
            true
        });
        if let Err(e) = saved {
            self.log.log(crate::logs::Severity::Error, &format!("Cannot save the site's state: {e}"));
        }
        moved
    }

    /// Builds and publishes one summarizer's view; returns its rows.
    fn publish(&self, task: Task, site: &Site, plan: &SummaryPlan, t: &Tally, now: Timestamp) -> u64 {
        let at = now.to_rfc3339();
        let updates = site.catalog.updates();
        let id = |u: usize| updates[u].id.styled(GuidStyle::Lower).to_string();
        let mut views = self.views.write().unwrap_or_else(|p| p.into_inner());
        let views = Arc::make_mut(&mut views);
        match task {
            Task::UpdateStatus => {
                let rows: Vec<UpdateSummary> = (0..plan.updates)
                    .filter(|&u| plan.active[u])
                    .map(|u| {
                        let c = t.updates[u];
                        UpdateSummary {
                            update_id: id(u),
                            article_id: updates[u].article.clone(),
                            title: updates[u].title.clone(),
                            total: t.clients,
                            unknown: c[UNKNOWN],
                            not_applicable: c[NOT_REQUIRED],
                            missing: c[REQUIRED],
                            present: c[INSTALLED],
                            percent_compliant: percent(c[INSTALLED] + c[NOT_REQUIRED], t.clients),
                            last_summarization_time: at.clone(),
                        }
                    })
                    .collect();
                let n = rows.len() as u64;
                views.updates = Arc::new(rows);
                n
            }
            Task::UpdateGroupStatus => {
                let rows: Vec<GroupSummary> = site
                    .update_groups
                    .iter()
                    .zip(&t.groups)
                    .map(|(g, c)| GroupSummary {
                        group_id: g.id,
                        name: g.name.clone(),
                        total: t.clients,
                        compliant: c[COMPLIANT],
                        non_compliant: c[NON_COMPLIANT],
                        unknown: c[STATUS_UNKNOWN],
                        percent_compliant: percent(c[COMPLIANT], t.clients),
                        last_summarization_time: at.clone(),
                    })
                    .collect();
                let n = rows.len() as u64;
                views.groups = Arc::new(rows);
                n
            }
            _ => {
                let mut n = 0;
                let rows: Vec<DeploymentSummary> = site
                    .deployments
                    .iter()
                    .zip(&plan.deployments)
                    .zip(&t.deployments)
                    .map(|((d, p), c)| {
                        let cells = &t.cells[p.first_cell..p.first_cell + plan.groups[p.group].len()];
                        n += 1 + cells.len() as u64;
                        DeploymentSummary {
                            deployment_id: d.id,
                            name: d.name.clone(),
                            group_id: site.update_groups[d.group].id,
                            targeted: c[0],
                            compliant: c[1 + COMPLIANT],
                            non_compliant: c[1 + NON_COMPLIANT],
                            unknown: c[1 + STATUS_UNKNOWN],
                            percent_compliant: percent(c[1 + COMPLIANT], c[0]),
                            last_summarization_time: at.clone(),
                            updates: plan.groups[p.group]
                                .iter()
                                .zip(cells)
                                .map(|(&u, k)| DeploymentUpdateSummary {
                                    update_id: id(u as usize),
                                    article_id: updates[u as usize].article.clone(),
                                    present: k[INSTALLED],
                                    missing: k[REQUIRED],
                                    not_applicable: k[NOT_REQUIRED],
                                    unknown: k[UNKNOWN],
                                })
                                .collect(),
                        }
                    })
                    .collect();
                views.deployments = Arc::new(rows);
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SiteClock;
    use crate::logs::Format;
    use crate::statesys::state::{Record, Target};
    use protocol::Guid;

    #[test]
    fn migration_moves_superseded_status_out_of_the_views() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = SiteClock::new(Timestamp(0), 1.0);
        let log = Arc::new(
            ComponentLog::open(tmp.path(), "StateSys.log", "SMS_STATE_SYSTEM", Format::Site, clock).unwrap(),
        );
        let store = Arc::new(Store::new(2, 200));
        let summarizer = Summarizer::new(Arc::clone(&store), log);
        let site = LiveSite::open_in(tmp.path(), Site::default_site(), clock).unwrap();
        // Three clients: update 0 required everywhere, update 1 installed everywhere.
        for c in 1..=3u128 {
            let r = |index, state| Record {
                time: 10,
                serial: index as u64,
                target: Target::Update { index, state },
            };
            store.apply(Guid(c), "PC", &[r(0, 2), r(1, 3)]);
        }
        let runs = summarizer.run(&site, &Task::ALL, Timestamp(20));
        assert_eq!(runs.iter().map(|r| r.rows).collect::<Vec<_>>(), [0, 0, 200, 2, 202]);
        let views = summarizer.views();
        assert_eq!((views.updates[0].missing, views.updates.len()), (3, 200));
        assert_eq!(views.groups[0].non_compliant, 3);
        // A sync supersedes update 0 (the oldest): until migration it still counts.
        site.sync(1, 1).unwrap();
        summarizer.run(&site, &[Task::UpdateStatus, Task::UpdateGroupStatus], Timestamp(30));
        let views = summarizer.views();
        assert_eq!((views.updates.len(), views.updates[0].missing), (201, 3));
        // Migration: 3 states moved; update 0 leaves the views and group 0 is no longer
        // non-compliant (update 1 installed, the rest unknown).
        let runs = summarizer.run(&site, &Task::ALL, Timestamp(40));
        assert_eq!(runs[0].rows, 3);
        let views = summarizer.views();
        assert_eq!(views.updates.len(), 200);
        assert_eq!(
            views.updates[0].update_id,
            site.read().catalog.updates()[1].id.styled(GuidStyle::Lower).to_string()
        );
        assert_eq!((views.groups[0].non_compliant, views.groups[0].unknown), (0, 3));
        assert_eq!(views.deployments[0].updates.len(), 99);
        assert!(!store.client(Guid(1)).unwrap().1[0].is_known(), "status moved off the store");
        assert_eq!(site.read().migrated_through, 39);
        let saved = std::fs::read_to_string(tmp.path().join("site.json")).unwrap();
        assert!(saved.contains("\"migrated_through\": 39"), "the migration is saved: {saved}");
        assert_eq!(summarizer.run(&site, &[Task::MigrateUpdateStatus], Timestamp(50))[0].rows, 0);
        let log = std::fs::read_to_string(tmp.path().join("StateSys.log")).unwrap();
        assert!(log.contains("Task 'SUM Migrate Update Status' completed successfully after running for 0 seconds, with status 3."), "{log}");
    }
}
