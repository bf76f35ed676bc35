//! `loomiere serve` started by a test: on 127.0.0.1 and a free port, its stderr (error and
//! access log) in a file, the address lines it prints on stdout read back, killed by PID and
//! reaped when dropped. Each test file adds its own request helpers in an `impl Serve`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running `loomiere serve`.
pub struct Serve {
    pub child: Child,
    /// `host:port` of the first listener (the first address line, without `http://` and `/`).
    pub addr: String,
    /// Every address line it printed: `http://…/`, then `https://…/` or `…/metrics` when configured.
    pub urls: Vec<String>,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// Its stdout, kept open so that later writes there do not fail.
    _stdout: BufReader<ChildStdout>,
}

impl Serve {
    /// `loomiere serve ARGS --listen 127.0.0.1:0` (and `--threads 2` unless `args` set it),
    /// stderr into `log`; waits for its address line.
    pub fn launch<S: AsRef<OsStr>>(args: &[S], log: &Path) -> Serve {
        let mut cmd = super::loomiere();
        cmd.arg("serve").args(args).args(["--listen", "127.0.0.1:0"]);
        if !args.iter().any(|a| a.as_ref() == "--threads") {
            cmd.args(["--threads", "2"]);
        }
        Serve::launch_cmd(cmd, 1, log)
    }

    /// Runs `cmd` (a whole `loomiere serve …` command line) with stderr into `log` and reads
    /// `lines` address lines from its stdout; panics with the log when it does not start.
    pub fn launch_cmd(mut cmd: Command, lines: usize, log: &Path) -> Serve {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start loomiere serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut urls = Vec::new();
        for _ in 0..lines {
            let mut line = String::new();
            out.read_line(&mut line).unwrap_or(0);
            if line.trim().is_empty() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            urls.push(line.trim().to_string());
        }
        let addr = urls[0].trim_start_matches("http://").trim_end_matches('/').to_string();
        Serve { child, addr, urls, log: log.to_path_buf(), _stdout: out }
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends it a signal by PID with kill(1), e.g. `-TERM`.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(super::run(Command::new("kill").args([sig, &pid])).status.success());
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
