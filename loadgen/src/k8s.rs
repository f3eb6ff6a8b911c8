//! `loadgen k8s`: the manifests that run a profile as N shards on Kubernetes, one pod per
//! `--shard I/N` through an Indexed Job (`completionMode: Indexed`: the pod of index I gets
//! `JOB_COMPLETION_INDEX=I`), each shard writing its run folder to a shared volume, and a merge
//! Job that adds the shards into one result (`loadgen merge`, exact: the histograms are added).
//!
//! | file | kind | what |
//! |---|---|---|
//! | `profile.yaml` | ConfigMap | the profile, mounted at `/profile/profile.toml` |
//! | `results.yaml` | PersistentVolumeClaim | `/results`, shared by the shards and the merge (ReadWriteMany) |
//! | `shards.yaml` | Job (Indexed) | N pods, `loadgen run /profile/profile.toml --target URL --shard $(JOB_COMPLETION_INDEX)/N --out /results/shard-$(JOB_COMPLETION_INDEX)` |
//! | `merge.yaml` | Job | `loadgen merge /results/shard-0 ... --out /results/merged`: apply once the shards completed |
//!
//! Manifests are JSON documents separated by `---` (JSON is YAML, and every Kubernetes tool
//! reads it), each after `#` comments that say where its figures come from. Resource requests
//! are sized from the profile: memory from the clients a shard simulates (measured: 1.31 GiB at
//! peak for a million clients with the embedded backend, `results/bench/loadgen-2026-11-24.md`;
//! we request 2 KiB a client plus 256 MiB), CPU from the requests a second the shard's clients
//! make at the profile's time scale (measured: about 65 µs of the generator's CPU per request
//! on the faithful wire, unsigned; about 500 µs signed, `results/bench/signing-2026-12-03.md`).
//!
//! There is no live collector: each shard judges its own thresholds, and the merge judges the
//! whole run afterwards.

use serde_json::{Value, json};

use crate::profile::Plan;

/// What `loadgen k8s` was asked for.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The Job's name; the other objects' names start with it.
    pub name: String,
    pub namespace: Option<String>,
    /// The image with `loadgen` as its entrypoint (the repository's `Dockerfile`).
    pub image: String,
    pub shards: u64,
    /// The MP the shards drive (shards need a shared target: an embedded backend each would be
    /// N sites).
    pub target: String,
    /// Signing is on (the profile's, else on against a target): CPU is sized for it.
    pub signing: bool,
}

/// One manifest: its file, the comments above it, the object.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: &'static str,
    pub comments: Vec<String>,
    pub object: Value,
}

/// CPU seconds the generator spends per request (faithful wire), unsigned and signed.
const CPU_PER_REQUEST: f64 = 65e-6;
const CPU_PER_SIGNED_REQUEST: f64 = 500e-6;
/// Memory per simulated client, and the process's base.
const BYTES_PER_CLIENT: u64 = 2048;
const BASE_MIB: u64 = 256;

/// What a shard needs: (CPU cores, memory MiB) and the requests a second they are sized for.
pub fn shard_resources(plan: &Plan, fleet: &Fleet) -> (f64, u64, f64) {
    let clients = plan.clients.div_ceil(fleet.shards.max(1));
    // A client polls policy and reports once a cycle, plus what a scan adds (location, catalog,
    // a policy body now and then): counted as two more requests per reporting cycle.
    let per_client =
        1.0 / plan.policy_poll.as_secs_f64().max(1.0) + 3.0 / plan.reporting_cycle.as_secs_f64().max(1.0);
    let rate = clients as f64 * per_client * plan.time_scale;
    let per_request = if fleet.signing { CPU_PER_SIGNED_REQUEST } else { CPU_PER_REQUEST };
    let cores = (rate * per_request * 1.5).max(0.25);
    let mib = BASE_MIB + (clients * BYTES_PER_CLIENT).div_ceil(1 << 20);
    (cores, mib, rate)
}

fn metadata(fleet: &Fleet, name: String) -> Value {
    let mut m = json!({ "name": name, "labels": { "app.kubernetes.io/name": "sumstorm-loadgen", "sumstorm/run": fleet.name } });
    if let Some(ns) = &fleet.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn volumes(fleet: &Fleet, profile: bool) -> Value {
    let mut v = vec![
        json!({ "name": "results", "persistentVolumeClaim": { "claimName": format!("{}-results", fleet.name) } }),
    ];
    if profile {
        v.push(json!({ "name": "profile", "configMap": { "name": format!("{}-profile", fleet.name) } }));
    }
    json!(v)
}

/// The manifests for `plan` (its text `profile_text`) as `fleet` says.
pub fn manifests(plan: &Plan, profile_text: &str, fleet: &Fleet) -> Vec<Manifest> {
    let (cores, mib, rate) = shard_resources(plan, fleet);
    let n = fleet.shards;
    let cpu = format!("{}m", (cores * 1000.0).ceil() as u64);
    let memory = format!("{mib}Mi");
    let shard_args = json!([
        "run",
        "/profile/profile.toml",
        "--target",
        fleet.target,
        "--shard",
        format!("$(JOB_COMPLETION_INDEX)/{n}"),
        "--out",
        "/results/shard-$(JOB_COMPLETION_INDEX)",
    ]);
    let mut merge_args = vec![json!("merge")];
    merge_args.extend((0..n).map(|i| json!(format!("/results/shard-{i}"))));
    merge_args.extend([json!("--out"), json!("/results/merged")]);
    vec![
        Manifest {
            file: "profile.yaml",
            comments: vec![format!("The profile {:?}, as the shards read it.", plan.name)],
            object: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": metadata(fleet, format!("{}-profile", fleet.name)),
                "data": { "profile.toml": profile_text },
            }),
        },
        Manifest {
            file: "results.yaml",
            comments: vec![
                "Where every shard writes its run folder (/results/shard-<i>) and the merge its result."
                    .into(),
                "ReadWriteMany: shards on several nodes write at once (NFS, CephFS, Azure Files ...).".into(),
            ],
            object: json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": metadata(fleet, format!("{}-results", fleet.name)),
                "spec": { "accessModes": ["ReadWriteMany"], "resources": { "requests": { "storage": "1Gi" } } },
            }),
        },
        Manifest {
            file: "shards.yaml",
            comments: vec![
                format!("{n} shards of {} clients: pod I runs `loadgen run --shard I/{n}`.", plan.clients),
                format!(
                    "Sized per shard: {:.0} requests a second at time scale {} x {} s of CPU each ({}) x 1.5 = {cpu}; \
                     {} clients x {BYTES_PER_CLIENT} bytes + {BASE_MIB} MiB = {memory}.",
                    rate,
                    plan.time_scale,
                    if fleet.signing { CPU_PER_SIGNED_REQUEST } else { CPU_PER_REQUEST },
                    if fleet.signing { "signed" } else { "unsigned" },
                    plan.clients.div_ceil(n.max(1)),
                ),
                "A failed index is retried once (backoffLimitPerIndex): it runs again into the same folder,"
                    .into(),
                "and what its first attempt sent reached the target too.".into(),
            ],
            object: json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": metadata(fleet, fleet.name.clone()),
                "spec": {
                    "completionMode": "Indexed",
                    "completions": n,
                    "parallelism": n,
                    "backoffLimitPerIndex": 1,
                    "maxFailedIndexes": 0,
                    "template": {
                        "metadata": { "labels": { "app.kubernetes.io/name": "sumstorm-loadgen", "sumstorm/run": fleet.name } },
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{
                                "name": "loadgen",
                                "image": fleet.image,
                                "args": shard_args,
                                "env": [{
                                    "name": "JOB_COMPLETION_INDEX",
                                    "valueFrom": { "fieldRef": { "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']" } },
                                }],
                                "resources": { "requests": { "cpu": cpu, "memory": memory }, "limits": { "memory": memory } },
                                "volumeMounts": [
                                    { "name": "profile", "mountPath": "/profile", "readOnly": true },
                                    { "name": "results", "mountPath": "/results" },
                                ],
                            }],
                            "volumes": volumes(fleet, true),
                        },
                    },
                },
            }),
        },
        Manifest {
            file: "merge.yaml",
            comments: vec![
                "Apply once the shards completed (kubectl wait --for=condition=complete job/NAME):".into(),
                "adds the shards into /results/merged, the same files as one run; its exit is the run's."
                    .into(),
            ],
            object: json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": metadata(fleet, format!("{}-merge", fleet.name)),
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": { "labels": { "app.kubernetes.io/name": "sumstorm-loadgen", "sumstorm/run": fleet.name } },
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{
                                "name": "merge",
                                "image": fleet.image,
                                "args": merge_args,
                                "resources": { "requests": { "cpu": "500m", "memory": "512Mi" } },
                                "volumeMounts": [{ "name": "results", "mountPath": "/results" }],
                            }],
                            "volumes": volumes(fleet, false),
                        },
                    },
                },
            }),
        },
    ]
}

/// One manifest as text: its comments, then the object.
pub fn render(m: &Manifest) -> String {
    let mut out: String = m.comments.iter().map(|c| format!("# {c}\n")).collect();
    out.push_str(&serde_json::to_string_pretty(&m.object).unwrap_or_default());
    out.push('\n');
    out
}

/// All of them, separated as a YAML stream (`---`), for stdout.
pub fn render_all(manifests: &[Manifest]) -> String {
    manifests.iter().map(render).collect::<Vec<_>>().join("---\n")
}

/// A `kustomization.yaml` for `dir`: everything but the merge, which is applied afterwards.
pub fn kustomization(manifests: &[Manifest], namespace: Option<&str>) -> String {
    let resources: Vec<&str> = manifests.iter().map(|m| m.file).filter(|f| *f != "merge.yaml").collect();
    let mut k = json!({ "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources });
    if let Some(ns) = namespace {
        k["namespace"] = json!(ns);
    }
    format!(
        "# kubectl apply -k .   then, once the shards completed:   kubectl apply -f merge.yaml\n{}\n",
        serde_json::to_string_pretty(&k).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API fields these manifests may use, by kind, as paths (`*` a list's items, `{}` any
    /// key of a map). A field outside them is a typo the API server would refuse or ignore.
    const FIELDS: &[(&str, &[&str])] = &[
        ("ConfigMap", &["apiVersion", "kind", "metadata", "data", "data.{}"]),
        (
            "PersistentVolumeClaim",
            &[
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "spec.accessModes",
                "spec.accessModes.*",
                "spec.resources",
                "spec.resources.requests",
                "spec.resources.requests.storage",
            ],
        ),
        (
            "Job",
            &[
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "spec.completionMode",
                "spec.completions",
                "spec.parallelism",
                "spec.backoffLimit",
                "spec.backoffLimitPerIndex",
                "spec.maxFailedIndexes",
                "spec.template",
                "spec.template.metadata",
                "spec.template.metadata.labels",
                "spec.template.metadata.labels.{}",
                "spec.template.spec",
                "spec.template.spec.restartPolicy",
                "spec.template.spec.containers",
                "spec.template.spec.containers.*",
                "spec.template.spec.containers.*.name",
                "spec.template.spec.containers.*.image",
                "spec.template.spec.containers.*.args",
                "spec.template.spec.containers.*.args.*",
                "spec.template.spec.containers.*.env",
                "spec.template.spec.containers.*.env.*",
                "spec.template.spec.containers.*.env.*.name",
                "spec.template.spec.containers.*.env.*.valueFrom",
                "spec.template.spec.containers.*.env.*.valueFrom.fieldRef",
                "spec.template.spec.containers.*.env.*.valueFrom.fieldRef.fieldPath",
                "spec.template.spec.containers.*.resources",
                "spec.template.spec.containers.*.resources.requests",
                "spec.template.spec.containers.*.resources.requests.cpu",
                "spec.template.spec.containers.*.resources.requests.memory",
                "spec.template.spec.containers.*.resources.limits",
                "spec.template.spec.containers.*.resources.limits.memory",
                "spec.template.spec.containers.*.volumeMounts",
                "spec.template.spec.containers.*.volumeMounts.*",
                "spec.template.spec.containers.*.volumeMounts.*.name",
                "spec.template.spec.containers.*.volumeMounts.*.mountPath",
                "spec.template.spec.containers.*.volumeMounts.*.readOnly",
                "spec.template.spec.volumes",
                "spec.template.spec.volumes.*",
                "spec.template.spec.volumes.*.name",
                "spec.template.spec.volumes.*.configMap",
                "spec.template.spec.volumes.*.configMap.name",
                "spec.template.spec.volumes.*.persistentVolumeClaim",
                "spec.template.spec.volumes.*.persistentVolumeClaim.claimName",
            ],
        ),
    ];
    const METADATA: &[&str] =
        &["metadata.name", "metadata.namespace", "metadata.labels", "metadata.labels.{}"];

    /// Every field's path, as its steps (`*` for a list's items).
    fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(at.clone());
        let join = |k: &str| {
            let mut p = at.clone();
            p.push(k.to_owned());
            p
        };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| paths(v, join(k), out)),
            Value::Array(a) => a.iter().for_each(|v| paths(v, join("*"), out)),
            _ => {}
        }
    }

    fn allowed(kind: &str, path: &[String]) -> bool {
        let fields = FIELDS.iter().find(|(k, _)| *k == kind).map_or(&[][..], |(_, f)| f);
        // A `{}` step matches any one map key (label names have dots of their own).
        let matches = |pattern: &str| {
            pattern.split('.').count() == path.len()
                && pattern.split('.').zip(path).all(|(a, b)| a == "{}" || a == b)
        };
        path.is_empty() || fields.iter().chain(METADATA).any(|p| matches(p))
    }

    /// A Job's container's arguments.
    fn container_args(job: &Value) -> Vec<&str> {
        let args = job["spec"]["template"]["spec"]["containers"][0]["args"].as_array();
        args.into_iter().flatten().filter_map(Value::as_str).collect()
    }

    fn plan() -> Plan {
        Plan::parse(
            "fleet",
            "[population]\nclients = 100000\n[run]\nduration = \"1h\"\ntime_scale = 60\n[client]\npolicy_poll = \"60m\"\nreporting_cycle = \"15m\"\n",
        )
        .expect("a profile")
    }

    fn fleet() -> Fleet {
        Fleet {
            name: "storm".into(),
            namespace: Some("lab".into()),
            image: "registry.example/sumstorm:1".into(),
            shards: 4,
            target: "http://mp.lab:80".into(),
            signing: false,
        }
    }

    #[test]
    fn every_field_is_an_api_field_and_the_stream_reads_back() {
        let ms = manifests(&plan(), "[population]\nclients = 100000\n", &fleet());
        let stream = render_all(&ms);
        let docs: Vec<Value> = stream
            .split("---\n")
            .map(|d| d.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
            .map(|d| serde_json::from_str(&d).expect("each document is JSON (and so YAML)"))
            .collect();
        assert_eq!(docs.len(), 4);
        for doc in &docs {
            let kind = doc["kind"].as_str().expect("a kind");
            let mut all = Vec::new();
            paths(doc, Vec::new(), &mut all);
            for path in &all {
                assert!(allowed(kind, path), "{kind}: {} is not a field of the API we use", path.join("."));
            }
            assert_eq!(doc["metadata"]["namespace"], "lab");
        }
        let job = &docs[2];
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(
            (job["spec"]["completionMode"].as_str(), job["spec"]["completions"].as_u64()),
            (Some("Indexed"), Some(4))
        );
        let args = container_args(job);
        assert_eq!(
            &args[..6],
            [
                "run",
                "/profile/profile.toml",
                "--target",
                "http://mp.lab:80",
                "--shard",
                "$(JOB_COMPLETION_INDEX)/4"
            ]
        );
        assert_eq!(
            container_args(&docs[3]),
            [
                "merge",
                "/results/shard-0",
                "/results/shard-1",
                "/results/shard-2",
                "/results/shard-3",
                "--out",
                "/results/merged"
            ]
        );
        let k = kustomization(&ms, Some("lab"));
        let k: Value =
            serde_json::from_str(&k.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
                .unwrap();
        assert_eq!(k["resources"], json!(["profile.yaml", "results.yaml", "shards.yaml"]));
    }

    #[test]
    fn resources_follow_the_profile() {
        let (p, f) = (plan(), fleet());
        let (cores, mib, rate) = shard_resources(&p, &f);
        // 25,000 clients a shard, (1/3600 + 3/900) requests a second each, at 60x.
        assert!((rate - 25_000.0 * (1.0 / 3600.0 + 3.0 / 900.0) * 60.0).abs() < 1e-6, "{rate}");
        assert!((cores - rate * CPU_PER_REQUEST * 1.5).abs() < 1e-9);
        assert_eq!(mib, 256 + (25_000 * 2048u64).div_ceil(1 << 20));
        let (signed, _, _) = shard_resources(&p, &Fleet { signing: true, ..f });
        assert!(signed > cores * 7.0);
    }
}
