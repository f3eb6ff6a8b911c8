//! Verification (issue 5 §7): after the backend drained and summarized, its views must equal what
//! the generator knows every client last reported, exactly.
//!
//! The ground truth per client is small ([`Truth`]: registered, located, the content version of
//! its newest acknowledged scan); the states themselves are a function of the seed
//! ([`sim::update_state`]), and which updates a scan reported is the catalog as of that version.
//! Expected counts follow the backend's documented rules (README, "Summarization"): NumTotal is
//! every known client, unknown is no state or state 0, groups and deployments count over the
//! updates still in the summaries (superseded ones leave once migrated).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use anyhow::Context as _;
use protocol::Guid;
use serde_json::{Value, json};

use crate::client::{Truth, parse_catalog};
use crate::profile::Plan;
use crate::sim;
use crate::transport::get_json as get;

/// What a boundary matches.
#[derive(Debug, Clone)]
pub(crate) enum Boundary {
    Subnet(String),
    Range(Ipv4Addr, Ipv4Addr),
    AdSite(String),
}

impl Boundary {
    pub(crate) fn contains(&self, p: &Place<'_>) -> bool {
        match self {
            Boundary::Subnet(s) => *s == p.subnet,
            Boundary::Range(lo, hi) => (*lo..=*hi).contains(&p.address),
            Boundary::AdSite(s) => s.eq_ignore_ascii_case(p.ad_site),
        }
    }
}

/// The site's boundary groups (`GET /api/v1/site`'s `BoundaryGroups`) by name.
pub(crate) fn boundary_groups(site: &Value) -> HashMap<String, Vec<Boundary>> {
    let mut groups = HashMap::new();
    for g in site["BoundaryGroups"].as_array().into_iter().flatten() {
        let boundaries = g["Boundaries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                if let Some(s) = b["Subnet"].as_str() {
                    Some(Boundary::Subnet(s.to_owned()))
                } else if let Some(s) = b["ADSite"].as_str() {
                    Some(Boundary::AdSite(s.to_owned()))
                } else {
                    let r = b["IPRange"].as_array()?;
                    Some(Boundary::Range(
                        r.first()?.as_str()?.parse().ok()?,
                        r.get(1)?.as_str()?.parse().ok()?,
                    ))
                }
            })
            .collect();
        groups.insert(g["Name"].as_str().unwrap_or_default().to_owned(), boundaries);
    }
    groups
}

#[derive(Debug, Clone)]
enum Target {
    All,
    AdSites(Vec<String>),
    BoundaryGroups(Vec<Vec<Boundary>>),
}

/// Where a client is, as its location request said.
pub(crate) struct Place<'a> {
    pub ad_site: &'a str,
    pub subnet: String,
    pub address: Ipv4Addr,
}

impl Place<'_> {
    /// Where simulated client `index` of `plan` is.
    pub(crate) fn of(plan: &Plan, index: u64) -> Place<'_> {
        let id = sim::identity(plan, index);
        Place {
            ad_site: &plan.ad_sites[id.ad_site],
            subnet: plan.subnets[id.subnet].network.to_string(),
            address: id.address,
        }
    }
}

impl Target {
    fn contains(&self, located: Option<&Place<'_>>) -> bool {
        match (self, located) {
            (Target::All, _) => true,
            (_, None) => false,
            (Target::AdSites(sites), Some(p)) => sites.iter().any(|s| s.eq_ignore_ascii_case(p.ad_site)),
            (Target::BoundaryGroups(groups), Some(p)) => groups.iter().flatten().any(|b| b.contains(p)),
        }
    }
}

/// [unknown, not required, required, installed]
type Buckets = [i64; 4];

fn bucket(state: u8) -> usize {
    match state {
        1 => 1,
        2 => 2,
        3 => 3,
        _ => 0,
    }
}

/// The outcome, as `verify.json` holds it.
#[derive(Debug, Clone)]
pub struct Verification {
    pub exact: bool,
    pub differences: Vec<String>,
    /// The expected views (what the generator's truth implies), for comparing runs.
    pub expected: Value,
    pub json: Value,
}

/// Compares the backend's views at `base` with `truths`.
pub async fn verify(plan: &Plan, base: &str, truths: &[Truth]) -> anyhow::Result<Verification> {
    let site = get(base, "/api/v1/site").await?;
    let current = get(base, "/api/v1/catalog").await?;
    let sup = site["SUPs"][0]["Name"].as_str().context("site: no SUP")?.to_owned();
    let active: Vec<Guid> =
        parse_catalog(&serde_json::to_vec(&current).unwrap_or_default())?.iter().map(|e| e.id).collect();
    // The catalog each acknowledged scan saw.
    let mut scanned: HashMap<u32, HashSet<Guid>> = HashMap::new();
    for v in truths.iter().filter_map(|t| t.acked_version).collect::<HashSet<_>>() {
        let body = get(base, &format!("/wsus/{sup}/catalog?version={v}")).await?;
        let ids =
            parse_catalog(&serde_json::to_vec(&body).unwrap_or_default())?.iter().map(|e| e.id).collect();
        scanned.insert(v, ids);
    }
    let boundary_groups = boundary_groups(&site);
    let index_of: HashMap<Guid, usize> = active.iter().enumerate().map(|(i, g)| (*g, i)).collect();
    let groups: Vec<(u64, Vec<usize>)> = site["UpdateGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let members = g["Updates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str()?.parse::<Guid>().ok())
                .filter_map(|id| index_of.get(&id).copied())
                .collect();
            (g["GroupID"].as_u64().unwrap_or(0), members)
        })
        .collect();
    let group_pos: HashMap<u64, usize> = groups.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let deployments: Vec<(u64, usize, Target)> = site["Deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let c = &d["Collection"];
            let target = if let Some(sites) = c["ADSites"].as_array() {
                Target::AdSites(sites.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            } else if let Some(names) = c["BoundaryGroups"].as_array() {
                Target::BoundaryGroups(
                    names.iter().filter_map(|n| boundary_groups.get(n.as_str()?).cloned()).collect(),
                )
            } else {
                Target::All
            };
            let group = group_pos.get(&d["GroupID"].as_u64().unwrap_or(0)).copied().unwrap_or(0);
            (d["DeploymentID"].as_u64().unwrap_or(0), group, target)
        })
        .collect();

    // Expected counts.
    let mut total = 0i64;
    let mut updates = vec![[0i64; 4]; active.len()];
    let mut group_counts = vec![[0i64; 3]; groups.len()];
    let mut dep_counts = vec![[0i64; 4]; deployments.len()];
    let mut cells: Vec<Vec<Buckets>> =
        deployments.iter().map(|(_, g, _)| vec![[0; 4]; groups[*g].1.len()]).collect();
    let mut row = vec![0usize; active.len()];
    for t in truths
        .iter()
        .filter(|t| t.registered || t.located || t.acked_version.is_some() || t.reported_first > 0)
    {
        total += 1;
        let seen = t.acked_version.and_then(|v| scanned.get(&v));
        for (i, id) in active.iter().enumerate() {
            row[i] = match seen {
                Some(s) if s.contains(id) => bucket(sim::update_state(plan, t.index, *id)),
                // Open model: the catalog's first updates, in catalog order.
                _ if i < t.reported_first as usize => bucket(sim::update_state(plan, t.index, *id)),
                _ => 0,
            };
            updates[i][row[i]] += 1;
        }
        let status = |members: &[usize]| {
            if members.iter().any(|&u| row[u] == 2) {
                1
            } else if members.iter().any(|&u| row[u] == 0) {
                2
            } else {
                0
            }
        };
        for (g, (_, members)) in groups.iter().enumerate() {
            group_counts[g][status(members)] += 1;
        }
        let place = t.located.then(|| Place::of(plan, t.index));
        for (d, (_, g, target)) in deployments.iter().enumerate() {
            if target.contains(place.as_ref()) {
                dep_counts[d][0] += 1;
                dep_counts[d][1 + status(&groups[*g].1)] += 1;
                for (k, &u) in groups[*g].1.iter().enumerate() {
                    cells[d][k][row[u]] += 1;
                }
            }
        }
    }
    let expected_updates: BTreeMap<String, Value> = active
        .iter()
        .zip(&updates)
        .map(|(id, c)| {
            (
                id.styled(protocol::GuidStyle::Lower).to_string(),
                json!({ "NumTotal": total, "NumUnknown": c[0], "NumNotApplicable": c[1], "NumMissing": c[2], "NumPresent": c[3] }),
            )
        })
        .collect();
    let expected_groups: BTreeMap<String, Value> = groups
        .iter()
        .zip(&group_counts)
        .map(|((id, _), c)| {
            (id.to_string(), json!({ "NumTotal": total, "NumCompliant": c[0], "NumNonCompliant": c[1], "NumUnknown": c[2] }))
        })
        .collect();
    let expected_deployments: BTreeMap<String, Value> = deployments
        .iter()
        .enumerate()
        .map(|(d, (id, g, _))| {
            let c = dep_counts[d];
            let per_update: BTreeMap<String, Value> = groups[*g]
                .1
                .iter()
                .zip(&cells[d])
                .map(|(&u, k)| {
                    (
                        active[u].styled(protocol::GuidStyle::Lower).to_string(),
                        json!({ "NumPresent": k[3], "NumMissing": k[2], "NumNotApplicable": k[1], "NumUnknown": k[0] }),
                    )
                })
                .collect();
            (
                id.to_string(),
                json!({
                    "NumTargeted": c[0], "NumCompliant": c[1], "NumNonCompliant": c[2], "NumUnknown": c[3],
                    "Updates": per_update,
                }),
            )
        })
        .collect();

    // What the backend says.
    let mut differences = Vec::new();
    let compare =
        |differences: &mut Vec<String>, view: &str, key: &str, expected: &Value, actual: Option<&Value>| {
            let Some(fields) = expected.as_object() else { return };
            for (field, want) in fields {
                if field == "Updates" {
                    continue;
                }
                let got = actual.map(|a| &a[field]);
                if got != Some(want) {
                    differences.push(format!(
                        "{view} {key} {field}: expected {want}, backend has {}",
                        got.map_or("nothing".to_owned(), |g| g.to_string())
                    ));
                }
            }
        };
    let by = |rows: &Value, key: &str| -> HashMap<String, Value> {
        rows.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let k = match &r[key] {
                    Value::String(s) => s.to_ascii_lowercase(),
                    other => other.to_string(),
                };
                (k, r.clone())
            })
            .collect()
    };
    let got_updates = by(&get(base, "/api/v1/summary/updates").await?, "UpdateID");
    for (id, want) in &expected_updates {
        compare(&mut differences, "update", id, want, got_updates.get(id));
    }
    if got_updates.len() != expected_updates.len() {
        differences.push(format!(
            "updates: expected {} rows, backend has {}",
            expected_updates.len(),
            got_updates.len()
        ));
    }
    let got_groups = by(&get(base, "/api/v1/summary/update-groups").await?, "GroupID");
    for (id, want) in &expected_groups {
        compare(&mut differences, "update group", id, want, got_groups.get(id));
    }
    let got_deployments = by(&get(base, "/api/v1/summary/deployments").await?, "DeploymentID");
    for (id, want) in &expected_deployments {
        let actual = got_deployments.get(id);
        compare(&mut differences, "deployment", id, want, actual);
        let cells = actual.map(|a| by(&a["Updates"], "UpdateID")).unwrap_or_default();
        for (u, w) in want["Updates"].as_object().into_iter().flatten() {
            compare(&mut differences, "deployment", &format!("{id} update {u}"), w, cells.get(u));
        }
    }
    let expected = json!({
        "clients": total,
        "updates": expected_updates,
        "update_groups": expected_groups,
        "deployments": expected_deployments,
    });
    let exact = differences.is_empty();
    let json = json!({
        "exact": exact,
        "clients_known": total,
        "clients_with_acknowledged_scans": truths.iter().filter(|t| t.acked_version.is_some()).count(),
        "checked": { "updates": expected_updates.len(), "update_groups": expected_groups.len(), "deployments": expected_deployments.len() },
        "differences": differences.iter().take(100).collect::<Vec<_>>(),
        "differences_total": differences.len(),
        "expected": expected,
    });
    Ok(Verification { exact, differences, expected, json })
}

/// Compares the site database's views at `url` with `expected` (what [`verify`] expected of the
/// API): each update's counts from the status rows (`v_Update_ComplianceStatusAll`, a client with
/// no row for an update counting as unknown) and from `v_Update_ComplianceSummary`, and each
/// deployment's per-update counts from `v_UpdateDeploymentSummary`. The database is kept current
/// beside ingestion: first the backend at `base` must report it caught up (`CaughtUp`: nothing
/// queued or unframed; up to `patience`), then the comparison is tried up to three times, a second apart (the
/// summaries are written just after each summarization). `Ok` carries the differences of the
/// last try (none: exact) and how long the database took to catch up.
pub async fn verify_sql(
    url: &str,
    base: Option<&str>,
    expected: &Value,
    patience: std::time::Duration,
) -> anyhow::Result<(Vec<String>, std::time::Duration)> {
    let started = std::time::Instant::now();
    if let Some(base) = base {
        loop {
            let status = get(base, "/api/v1/status").await?;
            let db = &status["Database"];
            if db["CaughtUp"] == true {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < patience,
                "--verify-sql: the site database did not catch up within {patience:?}: {db}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    let caught_up = started.elapsed();
    let (pg, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("--verify-sql: cannot connect to {url}"))?;
    let task = tokio::spawn(connection);
    let mut tries = 0;
    let result = loop {
        tries += 1;
        let differences = sql_differences(&pg, expected).await?;
        if differences.is_empty() || tries >= 3 {
            break Ok((differences, caught_up));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    drop(pg);
    let _ = task.await;
    result
}

async fn sql_differences(pg: &tokio_postgres::Client, expected: &Value) -> anyhow::Result<Vec<String>> {
    const FIELDS: [&str; 5] = ["NumTotal", "NumUnknown", "NumNotApplicable", "NumMissing", "NumPresent"];
    let mut differences = Vec::new();
    let mut check = |view: &str, key: &str, want: &Value, got: Option<&[i64; 5]>| {
        for (f, field) in FIELDS.iter().enumerate() {
            let Some(w) = want[*field].as_i64() else { continue };
            let g = got.map(|g| g[f]);
            if g != Some(w) {
                differences.push(format!(
                    "sql {view} {key} {field}: expected {w}, the database has {}",
                    g.map_or("nothing".to_owned(), |g| g.to_string())
                ));
            }
        }
    };
    let lower = |s: String| s.to_ascii_lowercase();
    // The status rows themselves, counted per update and status.
    let rows = pg
        .query(
            "SELECT u.CI_UniqueID, a.Status::int, count(*)
               FROM v_Update_ComplianceStatusAll a JOIN v_UpdateInfo u ON u.CI_ID = a.CI_ID
              GROUP BY u.CI_UniqueID, a.Status",
            &[],
        )
        .await
        .context("--verify-sql: reading v_Update_ComplianceStatusAll")?;
    let mut counted: HashMap<String, [i64; 5]> = HashMap::new();
    for r in rows {
        let (id, status, n): (String, i32, i64) = (r.get(0), r.get(1), r.get(2));
        let c = counted.entry(lower(id)).or_default();
        c[0] += n;
        c[1 + bucket(u8::try_from(status).unwrap_or(0))] += n;
    }
    let summary = pg
        .query(
            "SELECT u.CI_UniqueID, s.NumTotal::bigint, s.NumUnknown::bigint, s.NumNotApplicable::bigint,
                    s.NumMissing::bigint, s.NumPresent::bigint
               FROM v_Update_ComplianceSummary s JOIN v_UpdateInfo u ON u.CI_ID = s.CI_ID",
            &[],
        )
        .await
        .context("--verify-sql: reading v_Update_ComplianceSummary")?;
    let summarized: HashMap<String, [i64; 5]> = summary
        .iter()
        .map(|r| (lower(r.get(0)), [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)]))
        .collect();
    for (id, want) in expected["updates"].as_object().into_iter().flatten() {
        check("v_Update_ComplianceStatusAll", id, want, counted.get(id));
        check("v_Update_ComplianceSummary", id, want, summarized.get(id));
    }
    let deployments = pg
        .query(
            "SELECT d.AssignmentID, u.CI_UniqueID, d.NumUnknown::bigint, d.NumNotApplicable::bigint,
                    d.NumMissing::bigint, d.NumPresent::bigint
               FROM v_UpdateDeploymentSummary d JOIN v_UpdateInfo u ON u.CI_ID = d.CI_ID",
            &[],
        )
        .await
        .context("--verify-sql: reading v_UpdateDeploymentSummary")?;
    let cells: HashMap<(String, String), [i64; 5]> = deployments
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            ((id.to_string(), lower(r.get(1))), [0, r.get(2), r.get(3), r.get(4), r.get(5)])
        })
        .collect();
    for (d, want) in expected["deployments"].as_object().into_iter().flatten() {
        for (u, w) in want["Updates"].as_object().into_iter().flatten() {
            check(
                "v_UpdateDeploymentSummary",
                &format!("{d} update {u}"),
                w,
                cells.get(&(d.clone(), u.clone())),
            );
        }
    }
    Ok(differences)
}
