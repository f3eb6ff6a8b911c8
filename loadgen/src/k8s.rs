//! `loadgen k8s`: the manifests that run a profile as N shards on Kubernetes with one live
//! verdict: an Indexed Job of shards (`completionMode: Indexed`: the pod of index I gets
//! `JOB_COMPLETION_INDEX=I` and runs `loadgen run --shard I/N --collector ...`) and the collector
//! (`loadgen collect`, [`crate::collect`]) that starts them together, judges the fleet live and
//! writes the run's result files.
//!
//! | file | kind | what |
//! |---|---|---|
//! | `profile.yaml` | ConfigMap | the profile, mounted at `/profile/profile.toml` |
//! | `token.yaml` | Secret | the fleet's token (random, made with the manifests), as `SUMSTORM_COLLECTOR_TOKEN` |
//! | `results.yaml` | PersistentVolumeClaim | `/results`: each shard's own folder (`shard-<i>`) and the fleet's (`fleet`) |
//! | `collector.yaml` | Job | `loadgen collect --shards N --target URL --out /results/fleet --linger 15m`; its exit is the run's verdict |
//! | `collector-service.yaml` | Service | `NAME-collector:8099`, the collector's pod |
//! | `shards.yaml` | Job (Indexed) | N pods, `loadgen run /profile/profile.toml --target URL --shard $(JOB_COMPLETION_INDEX)/N --collector http://NAME-collector:8099 --out /results/shard-$(JOB_COMPLETION_INDEX)` |
//!
//! The collector is a Job, not a Deployment: a Deployment restarts a container that exits, and
//! the collector's exit status is the run's verdict (`kubectl wait --for=condition=complete`, or
//! `failed`). It stays up `--linger` after writing the results so they can be copied out.
//!
//! Manifests are JSON documents separated by `---` (JSON is YAML, and every Kubernetes tool
//! reads it), each after `#` comments that say where its figures come from. Resource requests
//! are sized from the profile: a shard's memory from the clients it simulates (measured: 1.31 GiB
//! at peak for a million clients with the embedded backend, `results/bench/loadgen-2026-11-24.md`;
//! we request 2 KiB a client plus 256 MiB), its CPU from the requests a second its clients make at
//! the profile's time scale (measured: about 65 µs of the generator's CPU per request on the
//! faithful wire, unsigned; about 500 µs signed, `results/bench/signing-2026-12-03.md`); the
//! collector's memory from the clients' truths it holds at the end (about 200 bytes a client,
//! their post and their records).

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
/// The collector's memory per client of the fleet (its truth, posted and kept).
const COLLECTOR_BYTES_PER_CLIENT: u64 = 200;
/// The collector's port.
pub const COLLECTOR_PORT: u16 = 8099;

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

fn volumes(fleet: &Fleet) -> Value {
    json!([
        { "name": "results", "persistentVolumeClaim": { "claimName": format!("{}-results", fleet.name) } },
        { "name": "profile", "configMap": { "name": format!("{}-profile", fleet.name) } },
    ])
}

/// The collector's Service name.
pub fn collector_name(fleet: &Fleet) -> String {
    format!("{}-collector", fleet.name)
}

/// A fresh token for the fleet's Secret: 32 random bytes in hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The container's environment: the fleet's token from its Secret.
fn token_env(fleet: &Fleet) -> Value {
    json!({
        "name": crate::collect::TOKEN_ENV,
        "valueFrom": { "secretKeyRef": { "name": format!("{}-token", fleet.name), "key": "token" } },
    })
}

fn labels(fleet: &Fleet, role: &str) -> Value {
    json!({ "app.kubernetes.io/name": "sumstorm-loadgen", "sumstorm/run": fleet.name, "sumstorm/role": role })
}

/// The manifests for `plan` (its text `profile_text`) as `fleet` says, with `token` in the
/// fleet's Secret.
pub fn manifests(plan: &Plan, profile_text: &str, fleet: &Fleet, token: &str) -> Vec<Manifest> {
    let (cores, mib, rate) = shard_resources(plan, fleet);
    let n = fleet.shards;
    let cpu = format!("{}m", (cores * 1000.0).ceil() as u64);
    let memory = format!("{mib}Mi");
    let collector_mib = BASE_MIB + (plan.clients * COLLECTOR_BYTES_PER_CLIENT).div_ceil(1 << 20);
    let collector_url = format!("http://{}:{COLLECTOR_PORT}", collector_name(fleet));
    let shard_args = json!([
        "run",
        "/profile/profile.toml",
        "--target",
        fleet.target,
        "--shard",
        format!("$(JOB_COMPLETION_INDEX)/{n}"),
        "--collector",
        collector_url,
        "--out",
        "/results/shard-$(JOB_COMPLETION_INDEX)",
    ]);
    let collector_args = json!([
        "collect",
        "/profile/profile.toml",
        "--shards",
        n.to_string(),
        "--target",
        fleet.target,
        "--listen",
        format!("0.0.0.0:{COLLECTOR_PORT}"),
        "--out",
        "/results/fleet",
        "--linger",
        "15m",
    ]);
    let mounts = json!([
        { "name": "profile", "mountPath": "/profile", "readOnly": true },
        { "name": "results", "mountPath": "/results" },
    ]);
    vec![
        Manifest {
            file: "profile.yaml",
            comments: vec![format!("The profile {:?}, as the shards and the collector read it.", plan.name)],
            object: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": metadata(fleet, format!("{}-profile", fleet.name)),
                "data": { "profile.toml": profile_text },
            }),
        },
        Manifest {
            file: "token.yaml",
            comments: vec![
                "The fleet's token: every post to the collector carries it (made with these manifests;".into(),
                "make a new one with `loadgen k8s` again, or replace it with your own).".into(),
            ],
            object: json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": metadata(fleet, format!("{}-token", fleet.name)),
                "type": "Opaque",
                "stringData": { "token": token },
            }),
        },
        Manifest {
            file: "results.yaml",
            comments: vec![
                "Where every shard writes its own run folder (/results/shard-<i>) and the collector the fleet's (/results/fleet)."
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
            file: "collector.yaml",
            comments: vec![
                format!("The collector: waits for the {n} shards, starts them together, judges the fleet live, fires the syncs,"),
                "then drains, summarizes and verifies the target and writes /results/fleet. Its exit is the run's verdict"
                    .into(),
                "(0 passed, 1 a threshold failed, 3 verification failed, 4 the generator fell behind, 5 a shard never finished);"
                    .into(),
                "it stays up 15 minutes after the results for `kubectl cp`.".into(),
                format!(
                    "Memory: {} clients' truths x {COLLECTOR_BYTES_PER_CLIENT} bytes + {BASE_MIB} MiB = {collector_mib}Mi.",
                    plan.clients
                ),
            ],
            object: json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": metadata(fleet, collector_name(fleet)),
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": { "labels": labels(fleet, "collector") },
                        "spec": {
                            "restartPolicy": "Never",
                            // The image's user; the results volume writable by its group.
                            "securityContext": { "runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001 },
                            "containers": [{
                                "name": "collector",
                                "image": fleet.image,
                                "args": collector_args,
                                "env": [token_env(fleet)],
                                "ports": [{ "name": "collector", "containerPort": COLLECTOR_PORT }],
                                "resources": {
                                    "requests": { "cpu": "500m", "memory": format!("{collector_mib}Mi") },
                                    "limits": { "memory": format!("{collector_mib}Mi") },
                                },
                                "volumeMounts": mounts,
                            }],
                            "volumes": volumes(fleet),
                        },
                    },
                },
            }),
        },
        Manifest {
            file: "collector-service.yaml",
            comments: vec![format!("The shards reach the collector at {collector_url}.")],
            object: json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": metadata(fleet, collector_name(fleet)),
                "spec": {
                    "selector": labels(fleet, "collector"),
                    "ports": [{ "name": "collector", "port": COLLECTOR_PORT, "targetPort": COLLECTOR_PORT, "protocol": "TCP" }],
                },
            }),
        },
        Manifest {
            file: "shards.yaml",
            comments: vec![
                format!(
                    "{n} shards of {} clients: pod I runs `loadgen run --shard I/{n} --collector {collector_url}`.",
                    plan.clients
                ),
                format!(
                    "Sized per shard: {:.0} requests a second at time scale {} x {} s of CPU each ({}) x 1.5 = {cpu}; \
                     {} clients x {BYTES_PER_CLIENT} bytes + {BASE_MIB} MiB = {memory}.",
                    rate,
                    plan.time_scale,
                    if fleet.signing { CPU_PER_SIGNED_REQUEST } else { CPU_PER_REQUEST },
                    if fleet.signing { "signed" } else { "unsigned" },
                    plan.clients.div_ceil(n.max(1)),
                ),
                "A failed index is retried once (backoffLimitPerIndex): the collector drops its first attempt's figures"
                    .into(),
                "and counts the second (what the first sent reached the target too). A shard exits 0 once the collector"
                    .into(),
                "has its figures, whatever the verdict, so a failed threshold is never retried.".into(),
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
                        "metadata": { "labels": labels(fleet, "shard") },
                        "spec": {
                            "restartPolicy": "Never",
                            // The image's user; the results volume writable by its group.
                            "securityContext": { "runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001 },
                            "containers": [{
                                "name": "loadgen",
                                "image": fleet.image,
                                "args": shard_args,
                                "env": [
                                    {
                                        "name": "JOB_COMPLETION_INDEX",
                                        "valueFrom": { "fieldRef": { "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']" } },
                                    },
                                    token_env(fleet),
                                ],
                                "resources": { "requests": { "cpu": cpu, "memory": memory }, "limits": { "memory": memory } },
                                "volumeMounts": mounts,
                            }],
                            "volumes": volumes(fleet),
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

/// A `kustomization.yaml` for `dir`: every manifest.
pub fn kustomization(manifests: &[Manifest], namespace: Option<&str>) -> String {
    let resources: Vec<&str> = manifests.iter().map(|m| m.file).collect();
    let mut k = json!({ "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources });
    if let Some(ns) = namespace {
        k["namespace"] = json!(ns);
    }
    format!(
        "# kubectl apply -k .   then: kubectl wait --for=condition=complete job/<name>-collector\n{}\n",
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
        ("Secret", &["apiVersion", "kind", "metadata", "type", "stringData", "stringData.{}"]),
        (
            "Service",
            &[
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "spec.selector",
                "spec.selector.{}",
                "spec.ports",
                "spec.ports.*",
                "spec.ports.*.name",
                "spec.ports.*.port",
                "spec.ports.*.targetPort",
                "spec.ports.*.protocol",
            ],
        ),
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
                "spec.template.spec.securityContext",
                "spec.template.spec.securityContext.runAsNonRoot",
                "spec.template.spec.securityContext.runAsUser",
                "spec.template.spec.securityContext.fsGroup",
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
                "spec.template.spec.containers.*.env.*.valueFrom.secretKeyRef",
                "spec.template.spec.containers.*.env.*.valueFrom.secretKeyRef.name",
                "spec.template.spec.containers.*.env.*.valueFrom.secretKeyRef.key",
                "spec.template.spec.containers.*.ports",
                "spec.template.spec.containers.*.ports.*",
                "spec.template.spec.containers.*.ports.*.name",
                "spec.template.spec.containers.*.ports.*.containerPort",
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
        let ms = manifests(&plan(), "[population]\nclients = 100000\n", &fleet(), "t0k3n");
        let stream = render_all(&ms);
        let docs: Vec<Value> = stream
            .split("---\n")
            .map(|d| d.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
            .map(|d| serde_json::from_str(&d).expect("each document is JSON (and so YAML)"))
            .collect();
        assert_eq!(docs.len(), 6);
        for doc in &docs {
            let kind = doc["kind"].as_str().expect("a kind");
            let mut all = Vec::new();
            paths(doc, Vec::new(), &mut all);
            for path in &all {
                assert!(allowed(kind, path), "{kind}: {} is not a field of the API we use", path.join("."));
            }
            assert_eq!(doc["metadata"]["namespace"], "lab");
        }
        let by_file = |f: &str| &docs[ms.iter().position(|m| m.file == f).expect(f)];
        assert_eq!(by_file("token.yaml")["stringData"]["token"], "t0k3n");
        let job = by_file("shards.yaml");
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(
            (job["spec"]["completionMode"].as_str(), job["spec"]["completions"].as_u64()),
            (Some("Indexed"), Some(4))
        );
        assert_eq!(
            container_args(job),
            [
                "run",
                "/profile/profile.toml",
                "--target",
                "http://mp.lab:80",
                "--shard",
                "$(JOB_COMPLETION_INDEX)/4",
                "--collector",
                "http://storm-collector:8099",
                "--out",
                "/results/shard-$(JOB_COMPLETION_INDEX)",
            ]
        );
        let collector = by_file("collector.yaml");
        assert_eq!(&container_args(collector)[..4], ["collect", "/profile/profile.toml", "--shards", "4"]);
        // The Service finds the collector's pod, on the port the shards call; both containers
        // read the token from the Secret.
        let service = by_file("collector-service.yaml");
        assert_eq!(service["metadata"]["name"], "storm-collector");
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&collector["spec"]["template"]["metadata"]["labels"][k], v, "selector {k}");
        }
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 8099);
        for j in [job, collector] {
            let env = &j["spec"]["template"]["spec"]["containers"][0]["env"];
            let token =
                env.as_array().unwrap().iter().find(|e| e["name"] == crate::collect::TOKEN_ENV).unwrap();
            assert_eq!(token["valueFrom"]["secretKeyRef"]["name"], "storm-token");
        }
        let k = kustomization(&ms, Some("lab"));
        let k: Value =
            serde_json::from_str(&k.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
                .unwrap();
        assert_eq!(k["resources"].as_array().map(Vec::len), Some(6));
        // kubectl, where there is one, reads them too (client side). Without a cluster it cannot
        // map the kinds to the API, but it must still read six documents of the stream.
        if let Ok(out) = std::process::Command::new("kubectl")
            .args(["create", "--dry-run=client", "--validate=false", "-o", "name", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().expect("stdin").write_all(stream.as_bytes())?;
                c.wait_with_output()
            })
        {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                assert_eq!(stdout.lines().count(), 6, "{stdout}");
            } else {
                assert!(!stderr.contains("error parsing"), "kubectl cannot read them: {stderr}");
                let unmapped = stderr.lines().filter(|l| l.starts_with("unable to recognize")).count();
                assert_eq!(unmapped, 6, "kubectl read another number of documents: {stderr}");
            }
        }
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
