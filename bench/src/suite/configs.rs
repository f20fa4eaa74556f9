//! Every config the suite runs with, generated here and nowhere else: the
//! nginx origin, and each proxy as an HTTP reverse proxy and as an L4
//! (TCP passthrough) proxy. `--log-dir DIR` keeps the files of each run.
//!
//! Everything lives in a fresh directory per run: nginx gets its prefix
//! (`-p`), pid file, error log (`-e`) and temp paths there, so nothing
//! under /etc or /var is read or written and no system service is
//! involved; every process stays in the foreground as a child of the
//! bench (nginx `daemon off`, HAProxy `-W -db`).
//!
//! # Equivalent settings
//!
//! | | HAProxy 2.6 | nginx 1.22 | baton |
//! |---|---|---|---|
//! | workers | `nbthread N` (master-worker, `-W`) | `worker_processes N` | tokio runtime sized by its CPU mask (N CPUs → N threads) |
//! | HTTP/2 to clients | `bind … proto h2` (own port) | `listen … http2` (own port) | same listener (h2c preface detected) |
//! | HTTP to the origin | HTTP/1.1, `http-reuse always`, `option http-keep-alive` | HTTP/1.1, `upstream { keepalive 64; }`, `Connection ""` | HTTP/1.1 keep-alive pool (up to 128 idle per cluster) |
//! | requests per client / upstream connection | unlimited | `keepalive_requests 1000000` (both) | unlimited |
//! | X-Forwarded-For / -Proto | `option forwardfor`, `set-header` | `proxy_set_header` | always |
//! | L4 | `mode tcp` (no `option splice-*`: default) | `stream { proxy_pass; }` (`ngx_stream_module`) | `protocol = "tcp"` |
//! | connections | `maxconn 8000` | `worker_connections 16000` | `max_connections` 10000 (default) |
//! | access log | none (`log` not set) | `access_log off` | none (`[access_log]` not set) |
//! | reload | SIGUSR2 to the master | SIGHUP to the master | `baton upgrade` (live upgrade) |
//!
//! The origin is nginx too (`worker_processes 1`, `return 200 "hello\n"`
//! on an HTTP/1.1 port and an h2c port, `keepalive_requests 1000000`,
//! access log off), started once for the whole suite on the load CPUs.

use std::net::SocketAddr;
use std::path::Path;

/// The origin's response body: small, and recognisable, so that a check
/// through a proxy proves the proxy reached the origin.
pub const ORIGIN_BODY: &str = "hello\n";

/// Where Debian's libnginx-mod-stream puts the L4 module.
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx's idle upstream connections per worker: above the requests in
/// flight (50, 64 in the reload runs), so that no request waits for a
/// connection to be opened.
const NGINX_UPSTREAM_KEEPALIVE: u32 = 128;

/// HAProxy's connection limit: above the memory scenario's 5,000. HAProxy
/// sizes its fd limit from it (about 2 per connection) and refuses to
/// start above the open-file limit (20,000 here).
const HAPROXY_MAXCONN: u32 = 8000;

/// nginx's connections per worker, client and upstream sides counted
/// separately: 5,000 proxied connections are 10,000; within the open-file
/// limit.
const NGINX_WORKER_CONNECTIONS: u32 = 16_000;

/// What a proxy does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// An HTTP reverse proxy (parses requests, pools upstream connections).
    Http,
    /// A TCP passthrough: one upstream connection per client connection.
    Tcp,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Http => "HTTP",
            Layer::Tcp => "L4",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Layer::Http => "http",
            Layer::Tcp => "l4",
        }
    }
}

/// `http { … }` settings every nginx here shares: no access log, temp
/// paths in `dir` (the compiled-in ones are under /var/lib/nginx), and
/// keep-alive connections that are never closed for their request count.
fn nginx_http_common(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    client_body_temp_path {d}/nginx-temp/body;
    proxy_temp_path {d}/nginx-temp/proxy;
    fastcgi_temp_path {d}/nginx-temp/fastcgi;
    uwsgi_temp_path {d}/nginx-temp/uwsgi;
    scgi_temp_path {d}/nginx-temp/scgi;
"
    )
}

/// The top of an nginx config: foreground, `workers` processes, pid file
/// and error log in `dir` under `name`. The log is at `notice` so that it
/// shows reloads (nothing is logged per connection at that level).
fn nginx_main(dir: &Path, name: &str, workers: usize) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}.error.log notice;
events {{
    worker_connections {NGINX_WORKER_CONNECTIONS};
}}
"
    )
}

/// The origin's config: HTTP/1.1 on `h1`, h2c on `h2`.
pub fn origin_config(dir: &Path, h1: u16, h2: u16) -> String {
    format!(
        "{main}http {{
{common}    server {{
        listen 127.0.0.1:{h1} backlog=4096;
        listen 127.0.0.1:{h2} http2 backlog=4096;
        location / {{
            return 200 \"{body}\";
        }}
    }}
}}
",
        main = nginx_main(dir, "origin", 1),
        common = nginx_http_common(dir),
        body = ORIGIN_BODY.escape_default(),
    )
}

/// What a proxy is configured to do, whichever the proxy.
#[derive(Debug, Clone, Copy)]
pub struct ProxySpec {
    pub layer: Layer,
    /// HTTP/1.1 (HTTP) or the L4 port.
    pub port: u16,
    /// h2c, for HTTP (nginx and HAProxy take it on a port of its own).
    pub h2: u16,
    pub target: SocketAddr,
    pub workers: usize,
}

/// nginx as the proxy `spec` describes.
pub fn nginx_config(dir: &Path, spec: &ProxySpec) -> String {
    let ProxySpec {
        layer,
        port,
        h2,
        target,
        workers,
    } = *spec;
    match layer {
        Layer::Http => format!(
            "{main}http {{
{common}    upstream target {{
        server {target};
        keepalive {NGINX_UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{h2} http2 backlog=4096;
        location / {{
            proxy_pass http://target;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
",
            main = nginx_main(dir, "nginx", workers),
            common = nginx_http_common(dir),
        ),
        Layer::Tcp => format!(
            "load_module {NGINX_STREAM_MODULE};
{main}stream {{
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        proxy_pass {target};
    }}
}}
",
            main = nginx_main(dir, "nginx", workers),
        ),
    }
}

/// HAProxy as the proxy `spec` describes.
pub fn haproxy_config(spec: &ProxySpec) -> String {
    let (defaults, frontend) = match spec.layer {
        Layer::Http => (
            "    mode http
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    option forwardfor
    http-reuse always
"
            .to_string(),
            format!(
                "    bind 127.0.0.1:{} proto h2
    http-request set-header X-Forwarded-Proto http
",
                spec.h2
            ),
        ),
        // Idle connections must outlive the memory scenario's idle phase.
        Layer::Tcp => (
            "    mode tcp
    timeout client 1h
    timeout server 1h
"
            .to_string(),
            String::new(),
        ),
    };
    format!(
        "global
    nbthread {workers}
    maxconn {HAPROXY_MAXCONN}

defaults
    timeout connect 5s
{defaults}
frontend bench
    bind 127.0.0.1:{port}
{frontend}    default_backend target

backend target
    server target {target}
",
        workers = spec.workers,
        port = spec.port,
        target = spec.target,
    )
}

/// baton: one listener named [`crate::baton::LISTENER`] on a kernel-chosen port
/// (`http`: HTTP/1.1 and h2c on the same port; `tcp`) whose cluster is
/// `target`.
pub fn baton_toml(
    control: &Path,
    worker: Option<&Path>,
    layer: Layer,
    target: SocketAddr,
) -> String {
    let protocol = match layer {
        Layer::Http => "http",
        Layer::Tcp => "tcp",
    };
    crate::baton::one_listener_toml(control, worker, protocol, &[target], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baton::LISTENER;

    fn target() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9000))
    }

    fn spec(layer: Layer, workers: usize) -> ProxySpec {
        ProxySpec {
            layer,
            port: 8001,
            h2: 8002,
            target: target(),
            workers,
        }
    }

    #[test]
    fn nginx_configs_keep_everything_in_the_run_dir() {
        let dir = Path::new("/tmp/run");
        let text = nginx_config(dir, &spec(Layer::Http, 2));
        assert!(text.contains("worker_processes 2;"));
        assert!(text.contains("daemon off;"));
        assert!(text.contains("listen 127.0.0.1:8002 http2"));
        assert!(text.contains("server 127.0.0.1:9000;"));
        assert!(text.contains("keepalive 128;"));
        assert_eq!(text.matches("keepalive_requests 1000000;").count(), 2);
        assert!(text.contains("proxy_set_header Connection \"\";"));
        assert!(text.contains("access_log off;"));
        // Every path nginx writes is in the run dir.
        for line in text.lines().map(str::trim) {
            let directive = line.split_whitespace().next().unwrap_or("");
            if ["pid", "error_log"].contains(&directive) || directive.ends_with("_temp_path") {
                assert!(line.contains(" /tmp/run/"), "{line}");
            }
        }
        assert_eq!(text.matches("_temp_path /tmp/run/nginx-temp/").count(), 5);
        let origin = origin_config(dir, 9000, 9001);
        assert!(origin.contains(r#"return 200 "hello\n";"#), "{origin}");
        assert!(origin.contains("listen 127.0.0.1:9001 http2"), "{origin}");
        assert!(origin.contains("worker_processes 1;"));
    }

    #[test]
    fn nginx_l4_is_a_stream_server_with_its_module() {
        let text = nginx_config(Path::new("/tmp/run"), &spec(Layer::Tcp, 1));
        assert!(text.starts_with(&format!("load_module {NGINX_STREAM_MODULE};\n")));
        assert!(text.contains("stream {"));
        assert!(text.contains("proxy_pass 127.0.0.1:9000;"));
        assert!(!text.contains("http {"));
        assert!(text.contains("worker_connections 16000;"));
    }

    #[test]
    fn haproxy_configs() {
        let text = haproxy_config(&spec(Layer::Http, 1));
        assert!(text.contains("nbthread 1"));
        assert!(text.contains("bind 127.0.0.1:8001\n"));
        assert!(text.contains("bind 127.0.0.1:8002 proto h2"));
        assert!(text.contains("http-reuse always"));
        assert!(text.contains("server target 127.0.0.1:9000"));
        assert!(!text.contains("log "));
        let l4 = haproxy_config(&spec(Layer::Tcp, 1));
        assert!(l4.contains("mode tcp"));
        assert!(!l4.contains("mode http"));
        assert!(!l4.contains("splice"));
        assert!(l4.contains("maxconn 8000"));
    }

    #[test]
    fn baton_configs_are_what_baton_accepts() {
        for layer in [Layer::Http, Layer::Tcp] {
            let text = baton_toml(Path::new("/tmp/x/control.sock"), None, layer, target());
            assert!(text.contains(&format!("name = \"{LISTENER}\"")));
            let parsed = baton_config::parse("bench", &text).unwrap();
            assert_eq!(parsed.listeners.len(), 1);
            assert!(parsed.access_log.is_none());
        }
        let text = baton_toml(Path::new("/c.sock"), None, Layer::Tcp, target());
        assert!(text.contains("protocol = \"tcp\""));
    }
}
