//! Starting external programs (Redis, ...) for tests, on loopback only.
//!
//! When a program is missing, the test says so loudly and skips, so `cargo test` passes on a
//! machine without it. CI sets `MCP_SECURITY_REQUIRE_EXTERNAL=1`, which turns every such skip
//! into a failure.

#![allow(dead_code, unreachable_pub, reason = "each test uses a different part")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether skips must fail (CI installs every external program).
pub fn required() -> bool {
    std::env::var("MCP_SECURITY_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Says loudly that a test skipped, or fails it when skips are not allowed.
pub fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: {why}, and MCP_SECURITY_REQUIRE_EXTERNAL=1 forbids skipping"
    );
    eprintln!(
        "\n*** SKIPPED {test}: {why} (set MCP_SECURITY_REQUIRE_EXTERNAL=1 to make this a failure) ***\n"
    );
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// Finds a program on PATH or in the usual system directories.
pub fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A redis-server child process on loopback, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    /// Starts redis-server on a free loopback port, or `None` when it is not installed.
    pub fn start() -> Option<Redis> {
        let bin = find("redis-server")?;
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL server on loopback, in a temporary directory, stopped (and removed) on drop.
/// Started with Debian's `initdb` and `postgres` (from `/usr/lib/postgresql/*/bin` or PATH),
/// as the `postgres` user when the test runs as root (PostgreSQL refuses root).
pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    stopped: bool,
    bin: std::path::PathBuf,
    root: bool,
}

impl Postgres {
    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
            .collect();
        versions.sort();
        versions
            .pop()
            .or_else(|| find("initdb").and_then(|p| p.parent().map(std::path::Path::to_path_buf)))
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// `program args` as the postgres user when we are root.
    fn command(program: &std::path::Path, root: bool) -> Command {
        if root {
            // setpriv execs the program itself, so killing the child kills the server.
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// Starts a server on a free loopback port with trust authentication for user `postgres`,
    /// or `None` when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let bin = Self::bin_dir()?;
        let root = Self::is_root();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the PostgreSQL temp dir failed");
        }
        let init = Self::command(&bin.join("initdb"), root)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let child = Self::command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let pg = Postgres {
            child,
            port,
            dir,
            stopped: false,
            bin,
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(pg)
    }

    /// A libpq connection string for the `postgres` database.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Stops the server now (fast shutdown; SIGKILL if it lingers).
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // pg_ctl ships with the server (a `kill` binary may not be installed).
        let _ = Self::command(&self.bin.join("pg_ctl"), self.root)
            .arg("stop")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
