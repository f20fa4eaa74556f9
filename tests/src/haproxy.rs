//! HAProxy run by a test itself (Debian's package; `.ci/run` installs
//! it): one foreground process (`-db`) with a generated config in a temp
//! dir, on a port picked by binding port 0 first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::http_peer::free_port;

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// HAProxy with `defaults` in HTTP mode (timeouts of `timeout`), and one
    /// frontend on a free loopback port whose body is `frontend`, plus
    /// `rest` (backends) after it.
    pub fn start(timeout: &str, frontend: &str, rest: &str) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = format!(
            "global\n    maxconn 256\n\n\
             defaults\n    mode http\n    timeout connect {timeout}\n    timeout client {timeout}\n\
             \x20   timeout server {timeout}\n    timeout http-request {timeout}\n\n\
             frontend web\n    bind 127.0.0.1:{port}\n{frontend}\n\n{rest}\n"
        );
        let conf_path = dir.path().join("haproxy.cfg");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("haproxy runs (.ci/run installs it)");
        let mut haproxy = Haproxy {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        let addr = haproxy.addr;
        crate::eventually("haproxy to accept connections", || {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!("haproxy exited ({status}): {}", haproxy.log());
            }
            std::net::TcpStream::connect(addr).is_ok()
        });
        haproxy
    }

    /// What it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // One process (-db, no master): nothing is left behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `haproxy` on the PATH, else Debian's `/usr/sbin/haproxy`.
fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("haproxy"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"))
}
