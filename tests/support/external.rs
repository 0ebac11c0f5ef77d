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
