//! A `quarry serve` child process on an ephemeral loopback port: the one
//! harness the end-to-end tests (tests/e2e/common.rs wraps it with log
//! capture) and the benchmarks (`quarry bench search|load`) start servers
//! with. It waits, bounded, for the `listening on ADDR` line the server
//! prints, and a dropped process is killed so that no server outlives its
//! test or benchmark.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why a server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeProcessError {
    /// Spawning, signalling or waiting failed.
    #[error("quarry serve: {0}")]
    Io(#[from] std::io::Error),
    /// It exited before it listened.
    #[error("quarry serve exited with {status} before listening{logs}")]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// The end of what it logged, when its standard error was a pipe
        /// (else empty).
        logs: String,
    },
    /// It neither listened nor exited in time (it was killed).
    #[error("quarry serve did not {what} within {limit:?}")]
    Timeout {
        /// "listen" or "exit".
        what: &'static str,
        /// The limit.
        limit: Duration,
    },
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServeOptions<'a> {
    /// The `quarry` binary.
    pub bin: &'a Path,
    /// Its data directory.
    pub data_dir: &'a Path,
    /// More flags after `serve --listen 127.0.0.1:0 --data-dir DIR`
    /// (and `--http-listen 127.0.0.1:0` unless they name another).
    pub args: &'a [&'a str],
    /// Its `RUST_LOG`.
    pub rust_log: &'a str,
    /// How long it may take to listen.
    pub startup_limit: Duration,
}

/// Where a server's standard error (its logs) goes.
#[derive(Debug)]
pub enum Logs {
    /// Read line by line from the start (so that a chatty server never
    /// blocks on a full pipe); see [`ServeProcess::take_log_lines`].
    Lines,
    /// Appended to this file.
    File(std::fs::File),
}

/// A running `quarry serve`.
pub struct ServeProcess {
    child: Child,
    /// Its log lines, with [`Logs::Lines`].
    log_lines: Option<mpsc::Receiver<String>>,
    /// `http://127.0.0.1:PORT`.
    addr: String,
    /// The metrics address, when it was given --metrics-listen.
    metrics_addr: Option<String>,
    /// `http://127.0.0.1:PORT` of the HTTP API, unless it is off.
    http_addr: Option<String>,
    /// Time from spawn to listening.
    startup: Duration,
}

impl ServeProcess {
    /// Starts a server logging to `logs` and waits until it listens.
    /// `QUARRY_CONFIG` is not passed on.
    pub fn start(opts: &ServeOptions<'_>, logs: Logs) -> Result<Self, ServeProcessError> {
        let stderr = match logs {
            Logs::Lines => Stdio::piped(),
            Logs::File(file) => Stdio::from(file),
        };
        let started = Instant::now();
        let mut child = Command::new(opts.bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(opts.data_dir)
            .args(if opts.args.contains(&"--http-listen") {
                &[][..]
            } else {
                &["--http-listen", "127.0.0.1:0"][..]
            })
            .args(opts.args)
            .env("RUST_LOG", opts.rust_log)
            .env_remove("QUARRY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(std::io::Error::other("no stdout pipe").into());
        };
        let log_lines = child.stderr.take().map(pipe_lines);
        let lines = pipe_lines(stdout);
        let deadline = started + opts.startup_limit;
        let mut metrics_addr = None;
        let mut http_addr = None;
        let addr = loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("metrics on ") {
                        metrics_addr = Some(addr.trim().to_owned());
                    }
                    if let Some(addr) = line.strip_prefix("http on ") {
                        http_addr = Some(format!("http://{}", addr.trim()));
                    }
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break format!("http://{}", addr.trim());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    return Err(ServeProcessError::Exited {
                        status,
                        logs: last_lines(log_lines.as_ref()),
                    });
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServeProcessError::Timeout {
                    what: "listen",
                    limit: opts.startup_limit,
                });
            }
        };
        Ok(Self {
            child,
            log_lines,
            addr,
            metrics_addr,
            http_addr,
            startup: started.elapsed(),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `HOST:PORT` of /metrics, when the server was given --metrics-listen.
    pub fn metrics_addr(&self) -> Option<&str> {
        self.metrics_addr.as_deref()
    }

    /// `http://127.0.0.1:PORT` of the HTTP API, unless it was turned off.
    pub fn http_addr(&self) -> Option<&str> {
        self.http_addr.as_deref()
    }

    /// Time from spawn to listening.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log lines as they arrive, when it was started with
    /// [`Logs::Lines`] (once).
    pub fn take_log_lines(&mut self) -> Option<mpsc::Receiver<String>> {
        self.log_lines.take()
    }

    /// A channel to the server (10 s to connect).
    pub async fn channel(&self) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        tonic::transport::Channel::from_shared(self.addr.clone())
            .expect("a well-formed loopback address")
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
    }

    /// Sends `signal` (SIGTERM, SIGINT, SIGKILL...) without waiting.
    pub fn signal(&self, signal: libc::c_int) -> Result<(), ServeProcessError> {
        // SAFETY: kill(2) on a child we spawned and have not reaped (it
        // is reaped only by `wait`, which consumes self).
        if unsafe { libc::kill(self.child.id() as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().into())
        }
    }

    /// Waits at most `limit` for the process to exit; kills it after.
    pub fn wait(mut self, limit: Duration) -> Result<ExitStatus, ServeProcessError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(ServeProcessError::Timeout {
                    what: "exit",
                    limit,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then [`ServeProcess::wait`].
    pub fn stop(self, limit: Duration) -> Result<ExitStatus, ServeProcessError> {
        self.signal(libc::SIGTERM)?;
        self.wait(limit)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines an exited server logged, as ":\n..." (empty when its
/// logs went to a file).
fn last_lines(lines: Option<&mpsc::Receiver<String>>) -> String {
    const KEEP: usize = 40;
    let Some(lines) = lines else {
        return String::new();
    };
    // The reader thread ends at the pipe's end, shortly after the exit.
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => all.push(line),
            Err(_) => break,
        }
    }
    let tail = &all[all.len().saturating_sub(KEEP)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.join("\n"))
    }
}

/// Forwards a pipe's lines to a channel from a background thread.
pub fn pipe_lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
