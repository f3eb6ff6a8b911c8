//! The read-only site API (contract §2.4): the site and its catalog, StateSys's status, the
//! state names, one client's states, and the summaries as of their tasks' last runs. Nothing
//! here waits for StateSys or a running task: the summaries are snapshots behind an `Arc`, and a
//! client's states are 503 (retry) while StateSys is still loading or recovering the store.

use std::sync::atomic::Ordering;

use hyper::StatusCode;
use protocol::{Guid, GuidStyle, statenames};
use serde_json::{Value, json};

use crate::server::Shared;
use crate::server::http::{Reply, json_reply, text};
use crate::site::Collection;
use crate::statesys::tasks::{Task, TaskRun};

/// `GET /api/v1/summary/<view>`: `updates`, `update-groups` or `deployments`.
pub(super) fn summary(shared: &Shared, view: &str) -> Reply {
    let views = shared.summarizer.views();
    match view {
        "updates" => json_reply(StatusCode::OK, &json!(*views.updates)),
        "update-groups" => json_reply(StatusCode::OK, &json!(*views.groups)),
        "deployments" => json_reply(StatusCode::OK, &json!(*views.deployments)),
        _ => text(
            StatusCode::NOT_FOUND,
            format!("no summary {view:?}; summaries: updates, update-groups, deployments"),
        ),
    }
}

pub(super) fn site_json(shared: &Shared) -> Value {
    let site = shared.site.read();
    json!({
        "SiteCode": site.code,
        "UpdateSourceID": site.update_source_id.styled(GuidStyle::UpperBraced).to_string(),
        "ContentVersion": site.content_version,
        "PolicyID": site.policy_id,
        "PolicyVersion": site.policy_version(),
        "Updates": site.catalog.len(),
        "SUPs": site.sups.iter().map(|s| json!({
            "Name": s.name,
            "URL": format!("{}/wsus/{}", shared.mp.base_url, s.name),
            "Intranet": s.intranet,
            "Internet": s.internet,
            "SyncedContentVersion": site.synced_version(s),
            "BoundaryGroups": s.boundary_groups.iter().filter_map(|&g| site.boundary_groups.get(g).map(|b| b.name.clone())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "DPs": site.dps.iter().map(|d| json!({
            "Name": d.name,
            "BoundaryGroups": d.boundary_groups.iter().filter_map(|&g| site.boundary_groups.get(g).map(|b| b.name.clone())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "BoundaryGroups": site.boundary_groups.iter().map(|g| json!({
            "Name": g.name,
            "Boundaries": g.boundaries.iter().map(|b| match b {
                crate::site::Boundary::Subnet(net) => json!({ "Subnet": net.to_string() }),
                crate::site::Boundary::Range(lo, hi) => json!({ "IPRange": [lo.to_string(), hi.to_string()] }),
                crate::site::Boundary::AdSite(site) => json!({ "ADSite": site }),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "UpdateGroups": site.update_groups.iter().map(|g| json!({
            "GroupID": g.id,
            "Name": g.name,
            "Updates": g.updates.iter().filter_map(|&u| site.catalog.updates().get(u).map(|x| x.id.styled(GuidStyle::Lower).to_string())).collect::<Vec<_>>(),
            "TakesNewUpdates": g.takes_new_updates,
        })).collect::<Vec<_>>(),
        "Deployments": site.deployments.iter().map(|d| json!({
            "DeploymentID": d.id,
            "Name": d.name,
            "GroupID": site.update_groups.get(d.group).map(|g| g.id),
            "Collection": match &d.collection {
                Collection::AllClients => json!({ "AllClients": true }),
                Collection::AdSites(sites) => json!({ "ADSites": sites }),
                Collection::BoundaryGroups(groups) => json!({
                    "BoundaryGroups": groups.iter().filter_map(|&g| site.boundary_groups.get(g).map(|b| b.name.clone())).collect::<Vec<_>>(),
                }),
            },
        })).collect::<Vec<_>>(),
        "MigratedThroughContentVersion": site.migrated_through,
        "Summarization": Task::ALL.iter().map(|t| json!({
            "Task": t.name(),
            "EverySeconds": t.every(&site.schedules).as_secs_f64(),
        })).chain([json!({ "AgedAfterSeconds": site.schedules.aged_after.as_secs_f64() })]).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/status`: uptime, site time, every stage's counters, the last summarizations.
pub(super) fn status_json(shared: &Shared) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("UptimeSeconds".into(), json!(shared.started.elapsed().as_secs()));
    object.insert("SiteTime".into(), json!(shared.clock.now().to_rfc3339()));
    crate::counters::status_json(&shared.readings(), &mut object);
    object.insert(
        "LastSummarization".into(),
        summarization_json(shared.summarizer.views().last_runs.iter().flatten().copied()),
    );
    Value::Object(object)
}

pub(super) fn summarization_json(runs: impl Iterator<Item = TaskRun>) -> Value {
    Value::Array(
        runs.map(|r| {
            json!({
                "Task": r.task.name(),
                "Time": r.at.to_rfc3339(),
                "Rows": r.rows,
                "Seconds": r.duration.as_secs_f64(),
            })
        })
        .collect(),
    )
}

pub(super) fn statenames_json() -> Value {
    Value::Array(
        statenames::all()
            .map(|r| json!({ "TopicType": r.topic_type, "StateID": r.state_id, "StateName": r.name }))
            .collect(),
    )
}

pub(super) fn client_json(shared: &Shared, id: &str) -> Reply {
    let Ok(id) = Guid::parse_sms_id(id) else {
        return text(StatusCode::BAD_REQUEST, "expected a client GUID");
    };
    // Until StateSys has loaded the store and applied what the last run left, the store does
    // not say what the site knows.
    if shared.statesys.loading.load(Ordering::Acquire) || shared.statesys.recovering.load(Ordering::Acquire) {
        return crate::server::http::busy(shared, "StateSys is recovering its store; retry later");
    }
    let Some((client, row)) = shared.store.client(id) else {
        return text(StatusCode::NOT_FOUND, "no such client");
    };
    let site = shared.site.read();
    let time = |t: i64| protocol::Timestamp(t).to_rfc3339();
    let updates: Vec<Value> = row
        .iter()
        .enumerate()
        .filter(|(_, u)| u.is_known())
        .map(|(i, u)| {
            json!({
                "UpdateID": site.catalog.updates().get(i).map(|x| x.id.styled(GuidStyle::Lower).to_string()),
                "Status": u.state,
                "StatusName": statenames::state_name(statenames::TOPIC_UPDATE_DETECTION, u32::from(u.state)),
                "LastStatusCheckTime": time(u.time),
                "LastStatusChangeTime": time(u.changed),
                "SerialNumber": u.serial,
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "ClientID": format!("GUID:{}", client.id),
            "NetBIOSName": client.netbios_name.as_str(),
            "LastScan": client.scan.map(|s| json!({
                "State": s.state,
                "StateName": statenames::state_name(statenames::TOPIC_SCAN, u32::from(s.state)),
                "Time": time(s.time),
                "ContentVersion": s.content_version,
            })),
            "Location": client.location.as_ref().map(|l| json!({
                "ADSite": &*l.ad_site,
                "BoundaryGroups": (0..64).filter(|g| l.boundary_groups >> g & 1 == 1)
                    .filter_map(|g| site.boundary_groups.get(g).map(|b| b.name.clone()))
                    .collect::<Vec<_>>(),
            })),
            // When this process applied its newest results and first showed them in the SUM
            // Update Status view (site time in µs since the epoch, for exact comparisons).
            "Convergence": shared.store.seen(client.id).filter(|s| s.version > 0).map(|s| json!({
                "ContentVersion": s.version,
                "AppliedMicros": s.applied_at,
                "CountedVersion": s.counted,
                "CountedMicros": shared.store.convergence().run_time(s.counted_in),
            })),
            "LastSerialNumber": client.serials.last(),
            "MissingSerialRanges": client.serials.missing(),
            "Updates": updates,
        }),
    )
}

/// `GET /api/v1/convergence`: for each sync since the process started, when clients' results for
/// it were applied and when the SUM Update Status view first counted them (steps of
/// `[µs after the sync, clients]`).
pub(super) fn convergence_json(shared: &Shared) -> Value {
    let steps = |curve: &[(i64, u64)], from: i64| -> Value {
        curve.iter().map(|&(at, n)| json!([at.saturating_sub(from), n])).collect()
    };
    let syncs: Vec<Value> = shared
        .store
        .convergence()
        .curves()
        .iter()
        .map(|c| {
            json!({
                "ContentVersion": c.content_version,
                "SyncTime": protocol::Timestamp(c.synced_at).to_rfc3339(),
                "SyncMicros": c.synced_at,
                "Applied": c.applied.iter().map(|s| s.1).sum::<u64>(),
                "Visible": c.visible.iter().map(|s| s.1).sum::<u64>(),
                "AppliedSteps": steps(&c.applied, c.synced_at),
                "VisibleSteps": steps(&c.visible, c.synced_at),
            })
        })
        .collect();
    json!({ "SiteTime": shared.clock.now().to_rfc3339(), "Syncs": syncs })
}
