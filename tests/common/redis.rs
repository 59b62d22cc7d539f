//! A `redis-server` of a test's own: a free loopback port, a data directory in a temp dir,
//! append-only persistence with an fsync per write, stopped when dropped. Tests that need one
//! fail with a clear message when `redis-server` is not installed (CI installs it).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server (or a stopped one that can start again on the same port and data).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("no free loopback port");
    l.local_addr().expect("no local address").port()
}

fn binary() -> String {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => bin,
        _ => panic!(
            "`{bin}` is not installed or does not run: these tests need a Redis server \
             (run .ci/setup, which installs Debian's `redis-server`; or set REDIS_SERVER to its path)"
        ),
    }
}

impl RedisServer {
    /// Starts a server in a fresh temp dir, on a port no other test's server holds.
    pub fn start() -> RedisServer {
        let tmp = tempfile::tempdir().expect("no temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = RedisServer {
            child: None,
            port: 0,
            dir,
            _tmp: Some(tmp),
        };
        s.start_on_a_free_port();
        s
    }

    /// Starts a server keeping its data in `dir`.
    #[allow(dead_code)]
    pub fn start_in(dir: &Path) -> RedisServer {
        let mut s = RedisServer {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        s.start_on_a_free_port();
        s
    }

    /// A port found free may be taken by another test before the server binds it (tests run
    /// in parallel, each with servers of its own): then another port is tried, so no test ever
    /// talks to another test's server.
    fn start_on_a_free_port(&mut self) {
        for _ in 0..20 {
            self.port = free_port();
            if self.try_resume() {
                return;
            }
        }
        panic!("redis-server did not start on any of 20 free loopback ports");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port.
    #[allow(dead_code)]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) on the same port and data directory, and waits until it
    /// answers.
    pub fn resume(&mut self) {
        assert!(
            self.try_resume(),
            "redis-server could not start again on port {}: another process took the port",
            self.port
        );
    }

    /// Starts the server on `self.port` and waits until it answers; `false` when the port is
    /// taken (our server exited, or the one answering is another process).
    fn try_resume(&mut self) -> bool {
        // Benches may measure another fsync policy (`REDIS_APPENDFSYNC=everysec`).
        let fsync = std::env::var("REDIS_APPENDFSYNC").unwrap_or_else(|_| "always".to_owned());
        let mut child = Command::new(binary())
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                &fsync,
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server did not start");
        let client = redis::Client::open(self.url()).expect("bad url");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                // It exited: the port is taken.
                return false;
            }
            let pid = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c))
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("process_id:"))
                        .and_then(|p| p.trim().parse::<u32>().ok())
                });
            match pid {
                Some(pid) if pid == child.id() => {
                    self.child = Some(child);
                    return true;
                }
                Some(_) => {
                    // Another test's server answers on this port.
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: SIGTERM (it writes its data and exits) or SIGKILL.
    #[allow(dead_code)]
    pub fn stop(&mut self, kill: bool) {
        if let Some(mut child) = self.child.take() {
            if kill {
                let _ = child.kill();
            } else {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.wait();
        }
    }

    /// A plain connection, for inspecting what the store keeps.
    #[allow(dead_code)]
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("cannot connect to the test's redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
