//! A fleet with one live verdict: real `loadgen run --shard I/N --collector URL` processes, each in
//! a network namespace of its own with its own address (veth pairs on a bridge; where this machine
//! cannot make namespaces, processes on 127.0.0.x, said loudly), a real `loadgen collect` process
//! and a real `backend serve` process.
//!
//! - The fleet's result equals one unsharded run of the same seed in every count and in every
//!   histogram's sample count, with one shard killed and restarted mid-run (counted once).
//! - An abort stops every shard within 5 s; the fleet's sync fires once, not once a shard.
//! - A shard that never finishes: exit 5, never a pass.
//! - Posts without the token, with another, undecodable or from another fleet: refused with
//!   their status, nothing changed.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use loadgen::merge::read_hlog;
use serde_json::Value;

mod common;

const TOKEN: &str = "fleet-test-token";
const ADMIN: &str = "fleet-test-admin";

/// The tests' small site without its sync, for 25 simulated minutes at 60x (25 s): what a
/// client sends then depends on simulated time only, so shards add up to the unsharded run
/// exactly, as long as no Report takes longer than a reporting cycle (2 simulated minutes, 2 s
/// here: a client skips a cycle while its last Report is in flight). At 150x (0.8 s) a Report
/// in a full test suite's load once took longer.
fn steady() -> String {
    let sync = "[[event]]\nat = \"10m\"\nsync = { new_updates = 4, superseded = 1 }\n";
    let pace = "time_scale = 600\nduration = \"40m\"\n";
    assert!(
        common::SMALL.contains(sync) && common::SMALL.contains(pace),
        "the small site changed: mend this"
    );
    common::SMALL.replace(sync, "").replace(pace, "time_scale = 60\nduration = \"25m\"\n")
}

fn loadgen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loadgen"))
}

fn backend_binary() -> PathBuf {
    // `cargo test --workspace` builds the backend beside loadgen.
    loadgen().with_file_name("backend")
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Where the processes live: the host's address on a bridge and a namespace per shard, or
/// loopback where namespaces cannot be made.
struct Lab {
    host: String,
    shards: Vec<(Option<String>, String)>,
    bridge: Option<String>,
}

impl Lab {
    fn new(n: usize) -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = std::process::id() % 1000 * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let net = format!("10.{}.{}", 100 + id / 256 % 100, id % 256);
        let bridge = format!("ssbr{id}");
        let mut lab = Lab { host: format!("{net}.1"), shards: Vec::new(), bridge: Some(bridge.clone()) };
        let mut ok = ip(&["link", "add", &bridge, "type", "bridge"])
            && ip(&["addr", "add", &format!("{net}.1/24"), "dev", &bridge])
            && ip(&["link", "set", &bridge, "up"]);
        for i in 0..n {
            let ns = format!("ss{id}n{i}");
            let veth = format!("ssv{id}n{i}");
            let addr = format!("{net}.{}", 10 + i);
            ok = ok
                && ip(&["netns", "add", &ns])
                && ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])
                && ip(&["link", "set", &veth, "master", &bridge])
                && ip(&["link", "set", &veth, "up"])
                && ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])
                && ip(&["-n", &ns, "link", "set", "eth0", "up"])
                && ip(&["-n", &ns, "link", "set", "lo", "up"]);
            lab.shards.push((Some(ns), addr));
        }
        if !ok {
            drop(lab);
            eprintln!(
                "NOTE: this machine cannot make network namespaces here (not root, or no CAP_NET_ADMIN): \
                 the shards run as plain processes on 127.0.0.x"
            );
            return Lab {
                host: "127.0.0.1".into(),
                shards: (0..n).map(|i| (None, format!("127.0.0.{}", 10 + i))).collect(),
                bridge: None,
            };
        }
        lab
    }

    fn namespaced(&self) -> bool {
        self.bridge.is_some()
    }

    /// `loadgen` with `args`, inside shard `i`'s namespace.
    fn shard(&self, i: usize, args: &[String], log: &Path) -> Child {
        let mut c = match &self.shards[i].0 {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(loadgen());
                c
            }
            None => Command::new(loadgen()),
        };
        c.args(args)
            .env("SUMSTORM_COLLECTOR_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (ns, _) in &self.shards {
            if let Some(ns) = ns {
                let _ = ip(&["netns", "del", ns]);
            }
        }
        if let Some(b) = &self.bridge {
            let _ = ip(&["link", "del", b]);
        }
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line of `child`'s stderr holding `marker` (up to 60 s) and returns it; the rest
/// of its stderr goes to `log`.
fn line_with(child: &mut Child, marker: &str, log: PathBuf) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_owned();
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(log).unwrap();
        let mut sent = false;
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            use std::io::Write as _;
            let text = String::from_utf8_lossy(&line).into_owned();
            let _ = writeln!(out, "{text}");
            if !sent && text.contains(&wanted) {
                let _ = tx.send(text);
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no line with {marker:?}"))
}

/// `backend serve` on `host`, with an admin token (the collector is not a loopback peer when
/// the backend listens on the bridge); returns it and its URL.
fn backend(host: &str, data: &Path) -> (Proc, String) {
    let mut child = Command::new(backend_binary())
        .args(["serve", "--listen", &format!("{host}:0"), "--admin-token", ADMIN, "--statesys-pause", "0"])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = line_with(&mut child, "http://", data.with_extension("log"));
    let url = line[line.find("http://").unwrap()..].split_whitespace().next().unwrap().to_owned();
    (Proc(child), url)
}

/// `loadgen collect` for `shards` of `profile` on `host`; returns it and its URL.
fn collector(
    host: &str,
    profile: &Path,
    shards: u64,
    target: &str,
    out: &Path,
    extra: &[&str],
) -> (Proc, String) {
    let mut child = Command::new(loadgen())
        .arg("collect")
        .arg(profile)
        .args(["--shards", &shards.to_string(), "--listen", &format!("{host}:0"), "--target", target])
        .arg("--out")
        .arg(out)
        .args(["--allow-late", "--join-within", "60s"])
        .args(extra)
        .env("SUMSTORM_COLLECTOR_TOKEN", TOKEN)
        .env("SUMSTORM_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = line_with(&mut child, "waiting for", out.with_extension("log"));
    let addr = line.split("http://").nth(1).unwrap().split(": ").next().unwrap();
    (Proc(child), format!("http://{addr}"))
}

fn shard_args(profile: &Path, i: usize, n: usize, target: &str, collector: &str, out: &Path) -> Vec<String> {
    vec![
        "run".into(),
        profile.display().to_string(),
        "--target".into(),
        target.into(),
        "--shard".into(),
        format!("{i}/{n}"),
        "--collector".into(),
        collector.into(),
        "--allow-late".into(),
        "--out".into(),
        out.join(format!("shard-{i}")).display().to_string(),
    ]
}

fn wait(child: &mut Child, within: Duration) -> i32 {
    let until = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(Instant::now() < until, "a process did not end within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn counts(s: &Value) -> BTreeMap<String, (u64, u64)> {
    s["requests"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), (v["count"].as_u64().unwrap(), v["errors"].as_u64().unwrap())))
        .collect()
}

/// Per request kind, how many samples an interval log holds.
fn samples(path: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (tag, _, _, h) in read_hlog(path).unwrap() {
        *out.entry(tag).or_default() += h.len();
    }
    out
}

/// Waits until the collector's status says the fleet started.
fn started(collector: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    while Instant::now() < until {
        if let Ok(s) = rt.block_on(loadgen::transport::get_json(collector, "/v1/status"))
            && s["started"] == true
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the fleet never started");
}

#[test]
fn a_fleet_in_namespaces_equals_one_run_with_a_shard_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("steady.toml");
    let text = steady();
    std::fs::write(&profile, &text).unwrap();
    // The unsharded run of the same seed.
    let opts = loadgen::run::Options {
        out: Some(tmp.path().join("whole")),
        arbiters: Some(2),
        allow_late: true,
        ..Default::default()
    };
    let plan = loadgen::profile::Plan::parse("steady", &text).unwrap();
    let whole = loadgen::run::run(plan, &text, &opts).unwrap();
    assert_eq!(whole.exit, 0, "{:#}", whole.summary);

    let lab = Lab::new(3);
    let (_backend, target) = backend(&lab.host, &tmp.path().join("backend"));
    let out = tmp.path().join("fleet");
    let (mut collect, url) = collector(&lab.host, &profile, 3, &target, &out, &[]);
    let mut shards: Vec<Proc> = (0..3)
        .map(|i| {
            let args = shard_args(&profile, i, 3, &target, &url, &out);
            Proc(lab.shard(i, &args, &tmp.path().join(format!("shard-{i}.log"))))
        })
        .collect();
    // Shard 1 dies two seconds into the fleet's run, and comes back (as Kubernetes retries an
    // index): its first attempt's figures must not count.
    started(&url);
    std::thread::sleep(Duration::from_secs(2));
    let _ = shards[1].0.kill();
    let _ = shards[1].0.wait();
    let args = shard_args(&profile, 1, 3, &target, &url, &out);
    shards[1] = Proc(lab.shard(1, &args, &tmp.path().join("shard-1-again.log")));
    for (i, s) in shards.iter_mut().enumerate() {
        assert_eq!(
            wait(&mut s.0, Duration::from_secs(120)),
            0,
            "shard {i} exits 0 once the collector has it"
        );
    }
    let exit = wait(&mut collect.0, Duration::from_secs(120));
    let fleet = summary(&out);
    assert_eq!(exit, 0, "{fleet:#}");
    assert_eq!(fleet["verification"]["exact"], true, "the target's views equal every shard's truth");
    assert_eq!(fleet["clients"], whole.summary["clients"]);
    assert_eq!(counts(&fleet), counts(&whole.summary), "every request kind, every count");
    for key in ["sent", "acknowledged"] {
        assert_eq!(
            fleet["state_messages"][key], whole.summary["state_messages"][key],
            "state messages {key}"
        );
    }
    assert_eq!(samples(&out.join("latency.hlog")), samples(&whole.dir.join("latency.hlog")));
    assert_eq!(samples(&out.join("service-time.hlog")), samples(&whole.dir.join("service-time.hlog")));
    let per_shard = fleet["fleet"]["per_shard"].as_array().unwrap();
    let attempts: Vec<u64> = per_shard.iter().map(|s| s["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 1], "{per_shard:#?}");
    assert!(fleet["fleet"]["collector"]["cpu_seconds"].as_f64().is_some());
    for file in ["timeline.json", "verify.json", "report.html", "latency-state_report.hgrm"] {
        assert!(out.join(file).exists(), "{file}");
    }
    if lab.namespaced() {
        // Each shard spoke from its own namespace's address.
        let addresses: Vec<&str> = per_shard.iter().map(|s| s["address"].as_str().unwrap()).collect();
        let expected: Vec<&str> = lab.shards.iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(addresses, expected);
    }
}

/// Starts a fleet of `n` shards of `profile_text` against a fresh backend; returns what the
/// test needs to go on: the lab, the backend, the collector, the shards.
struct Fleet {
    lab: Lab,
    _backend: Proc,
    target: String,
    collector: Proc,
    url: String,
    shards: Vec<Proc>,
    out: PathBuf,
}

fn fleet(tmp: &Path, profile_text: &str, n: usize, extra: &[&str]) -> Fleet {
    let profile = tmp.join("profile.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let lab = Lab::new(n);
    let (backend, target) = backend(&lab.host, &tmp.join("backend"));
    let out = tmp.join("fleet");
    let (collector, url) = collector(&lab.host, &profile, n as u64, &target, &out, extra);
    let shards = (0..n)
        .map(|i| {
            let args = shard_args(&profile, i, n, &target, &url, &out);
            Proc(lab.shard(i, &args, &tmp.join(format!("shard-{i}.log"))))
        })
        .collect();
    Fleet { lab, _backend: backend, target, collector, url, shards, out }
}

fn content_version(target: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(loadgen::transport::get_json(target, "/api/v1/site")).unwrap()["ContentVersion"]
        .as_u64()
        .unwrap()
}

#[test]
fn an_abort_stops_every_shard_within_five_seconds_and_the_sync_fires_once() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = r#"
        [population]
        clients = 90
        seed = 5
        [client]
        policy_poll = "1m"
        [run]
        time_scale = 60
        duration = "40m"
        ramp_up = "30s"
        [[event]]
        at = "30s"
        sync = { new_updates = 3, superseded = 0 }
        [thresholds]
        "policy_assignments.p50" = "< 1us in 50% of 1s windows, abort after 2s"
    "#;
    let mut f = fleet(tmp.path(), profile, 3, &[]);
    let before = content_version(&f.target);
    for (i, s) in f.shards.iter_mut().enumerate() {
        assert_eq!(wait(&mut s.0, Duration::from_secs(60)), 0, "shard {i}");
    }
    let exit = wait(&mut f.collector.0, Duration::from_secs(60));
    let s = summary(&f.out);
    assert_eq!(exit, i32::from(loadgen::run::EXIT_THRESHOLD), "{s:#}");
    assert_eq!(s["aborted"]["threshold"], "policy_assignments.p50");
    assert!(
        s["wall_seconds"].as_f64().unwrap() < 20.0,
        "stopped long before its 40 s: {}",
        s["wall_seconds"]
    );
    for shard in s["fleet"]["per_shard"].as_array().unwrap() {
        let lag = shard["last_interval_after_abort_seconds"].as_f64().unwrap();
        assert!(lag <= 5.0, "shard {} went on {lag} s after the abort", shard["shard"]);
    }
    // The collector fired the profile's one sync, once for the site.
    assert_eq!(s["syncs"].as_array().map(Vec::len), Some(1), "{:#}", s["syncs"]);
    assert_eq!(content_version(&f.target), before + 1);
    assert_eq!(s["verification"]["exact"], true, "what was acknowledged up to the abort is applied");
}

#[test]
fn a_shard_that_never_finishes_makes_the_run_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fleet(tmp.path(), &steady(), 2, &["--grace", "2s"]);
    started(&f.url);
    std::thread::sleep(Duration::from_secs(2));
    let _ = f.shards[1].0.kill();
    assert_eq!(wait(&mut f.shards[0].0, Duration::from_secs(60)), 0);
    let exit = wait(&mut f.collector.0, Duration::from_secs(60));
    let s = summary(&f.out);
    assert_eq!(exit, i32::from(loadgen::collect::EXIT_INCOMPLETE), "{s:#}");
    assert_eq!(s["exit"], 5);
    assert_eq!(s["fleet"]["incomplete"], serde_json::json!([1]));
    assert_eq!(s["verification"]["checked"], false, "nothing verified on half the truth");
    // What did arrive is there: shard 0's figures.
    assert!(s["requests"]["state_report"]["count"].as_u64().unwrap() > 0);
    let _ = &f.lab;
}

#[test]
fn posts_without_the_token_or_that_do_not_decode_are_refused_and_change_nothing() {
    use hyper::{Method, StatusCode};
    use loadgen::transport::call_with;
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let sink = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let target = format!("http://{}", sink.local_addr().unwrap());
    rt.spawn(loadgen::sink::serve_on(sink));
    let text = steady();
    let plan = loadgen::profile::Plan::parse("steady", &text).unwrap();
    let cfg = loadgen::collect::Config {
        shards: 2,
        listen: "127.0.0.1:0".parse().unwrap(),
        out: tmp.path().join("fleet"),
        target,
        token: TOKEN.into(),
        join_within: Duration::from_secs(4),
        grace: Duration::from_secs(1),
        verify: true,
        allow_late: true,
        progress: false,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let collector =
        std::thread::spawn(move || loadgen::collect::collect(plan, &text, &cfg, Some(tx)).unwrap());
    let url = format!("http://{}", rx.recv_timeout(Duration::from_secs(30)).unwrap());
    let post = |path: &str, body: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        rt.block_on(call_with(&url, Method::POST, path, body.as_bytes(), &headers, Duration::from_secs(5)))
            .unwrap()
    };
    let id = |clients: u64| {
        format!(
            r#"{{"shard":0,"shards":2,"attempt":7,"plan":{{"profile":"steady","clients":{clients},"seed":21,"duration_seconds":1500.0,"time_scale":60.0}}}}"#
        )
    };
    assert_eq!(post("/v1/hello", &id(40), None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(post("/v1/hello", &id(40), Some("not-the-token")).0, StatusCode::FORBIDDEN);
    assert_eq!(post("/v1/hello", "{ not json", Some(TOKEN)).0, StatusCode::BAD_REQUEST);
    let (status, body) = post("/v1/hello", &id(61), Some(TOKEN));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&body).contains("another fleet"), "{}", String::from_utf8_lossy(&body));
    let other_count = id(40).replace(r#""shard":0,"shards":2"#, r#""shard":5,"shards":9"#);
    assert_eq!(post("/v1/hello", &other_count, Some(TOKEN)).0, StatusCode::CONFLICT);
    let interval = r#"{"shard":0,"attempt":7,"seq":0,"length":1.0,"figures":{"kinds":{},"lateness":"AAAA","messages_sent":0,"messages_acked":0}}"#;
    assert_eq!(
        post("/v1/interval", interval, Some(TOKEN)).0,
        StatusCode::BAD_REQUEST,
        "a histogram that is not one"
    );
    let status = rt.block_on(loadgen::transport::get_json(&url, "/v1/status")).unwrap();
    assert_eq!(status["started"], false);
    for shard in status["shards"].as_array().unwrap() {
        assert_eq!(shard["attempts"], 0, "a refused post changes nothing: {status:#}");
    }
    assert_eq!(status["refused"], serde_json::json!({ "400": 2, "401": 1, "403": 1, "409": 2 }));
    // Nobody joined: incomplete, never a pass.
    let collected = collector.join().unwrap();
    assert_eq!(collected.exit, loadgen::collect::EXIT_INCOMPLETE);
}

/// A profile that lists the site's MPs: each client uses the MP of its boundary group (here,
/// by AD site), and the run verifies exactly across them. The two "MPs" are one backend
/// reached at two loopback addresses, so the site is one and the split is the clients' choice.
#[test]
fn clients_spread_over_the_sites_mps_by_boundary_group() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site.toml");
    std::fs::write(
        &site,
        r#"
        site_code = "PS1"
        update_source_id = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"
        [[boundary_group]]
        name = "HQ"
        ad_sites = ["CM12-R2-PS1"]
        [[boundary_group]]
        name = "Branch"
        ad_sites = ["BRANCH-01"]
        [[sup]]
        name = "PS1SITE"
        boundary_groups = ["HQ", "Branch"]
        [[update_group]]
        name = "Security Updates 2026-10"
        updates = ["0..100"]
        [[deployment]]
        name = "Security Updates 2026-10 - All Clients"
        update_group = "Security Updates 2026-10"
        "#,
    )
    .unwrap();
    let data = tmp.path().join("backend");
    let mut child = Command::new(backend_binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--statesys-pause", "0", "--site"])
        .arg(&site)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = line_with(&mut child, "http://", data.with_extension("log"));
    let _backend = Proc(child);
    let port =
        line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().rsplit(':').next().unwrap();
    let profile = format!(
        "{}\n[[mp]]\nurl = \"http://127.0.0.1:{port}\"\nboundary_groups = [\"HQ\"]\n[[mp]]\nurl = \"http://127.0.0.2:{port}\"\nboundary_groups = [\"Branch\"]\n",
        common::SMALL
    );
    let plan = loadgen::profile::Plan::parse("mps", &profile).unwrap();
    let hq = (0..plan.clients).filter(|i| loadgen::sim::identity(&plan, *i).ad_site == 0).count() as u64;
    assert!(0 < hq && hq < plan.clients, "both AD sites have clients");
    let opts = loadgen::run::Options {
        target: Some(format!("http://127.0.0.1:{port}")),
        out: Some(tmp.path().join("run")),
        arbiters: Some(2),
        allow_late: true,
        ..Default::default()
    };
    let outcome = loadgen::run::run(plan.clone(), &profile, &opts).unwrap();
    let s = &outcome.summary;
    assert_eq!(outcome.exit, 0, "{s:#}");
    assert_eq!(s["verification"]["exact"], true);
    let mps = s["mps"].as_array().unwrap();
    assert_eq!(mps[0]["clients"].as_u64(), Some(hq), "{mps:#?}");
    assert_eq!(mps[1]["clients"].as_u64(), Some(plan.clients - hq));
    let requests: u64 =
        s["requests"].as_object().unwrap().values().map(|k| k["count"].as_u64().unwrap()).sum();
    assert_eq!(mps[0]["requests"].as_u64().unwrap() + mps[1]["requests"].as_u64().unwrap(), requests);
    assert!(mps.iter().all(|m| m["requests"].as_u64().unwrap() > 0 && m["errors"] == 0));
}
