//! A real PostgreSQL server for the tests: `SUMSTORM_PG_URL` (an admin URL, as `.ci/run` exports
//! it), or a throwaway cluster this test binary starts from the installed binaries (as the
//! `postgres` user when run as root: PostgreSQL refuses root), stopped by a watchdog when the test
//! process is gone. Each test gets a database of its own. Without PostgreSQL the tests say so and
//! pass, unless `SUMSTORM_REQUIRE_POSTGRES` is set (CI sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The admin URL of the server, once started.
fn server() -> Option<&'static str> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("SUMSTORM_PG_URL") {
                return Some(url);
            }
            match start_cluster() {
                Ok(url) => Some(url),
                Err(why) => {
                    if std::env::var_os("SUMSTORM_REQUIRE_POSTGRES").is_some() {
                        panic!("PostgreSQL is required (SUMSTORM_REQUIRE_POSTGRES) but: {why}");
                    }
                    eprintln!("SKIPPED: no PostgreSQL for the site database tests: {why}");
                    None
                }
            }
        })
        .as_deref()
}

/// A fresh, empty database `name` on the server: its URL.
pub(crate) fn database(name: &str) -> Option<String> {
    let admin = server()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (pg, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await.unwrap();
        let task = tokio::spawn(connection);
        // One statement per query: neither runs inside a transaction block.
        pg.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        pg.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        drop(pg);
        let _ = task.await;
    });
    Some(with_database(admin, name))
}

/// `url` naming database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_host = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_host..].find('/') {
        Some(slash) => &base[..after_host + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql".to_owned())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program args` as the postgres user when this process is root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<String, String> {
    let bin = bin_dir()?;
    let dir = std::env::temp_dir().join(format!("sumstorm-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err("cannot give the cluster directory to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let out = as_postgres(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The server lives as long as this test process: a watchdog stops it once the process is gone.
    let script = format!(
        "{postgres} -D {data} -k {dir} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
         -c shared_buffers=256MB >{dir}/server.log 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
         kill -INT $pg 2>/dev/null; sleep 2; kill -KILL $pg 2>/dev/null; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let mut shell = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    shell.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    shell.spawn().map_err(|e| format!("starting postgres: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Accepting connections is not yet accepting logins.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    while runtime.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)).is_err() {
        if Instant::now() > deadline {
            return Err("postgres did not accept a login".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(url)
}
