//! Real SMTP servers other than smtp-sink, run with python3 on a loopback
//! port, each saving what it accepts into its own directory (with an
//! `X-Rcpt-Args:` line first, as smtp-sink does, so `Received` reads both):
//!
//! - Python's stock `smtpd` module (CPython 3.11): a strict, minimal server
//!   that answers a second EHLO with 503 and offers no PIPELINING;
//! - aiosmtpd (from PyPI; scripts/test.sh installs it): STARTTLS, implicit
//!   TLS and AUTH with one user and password, logging every AUTH attempt
//!   with whether the session was encrypted.
//!
//! Certificates come from the `openssl` command: a private CA and a
//! certificate for 127.0.0.1 signed by it. Tests fail loudly when python3,
//! aiosmtpd or openssl is missing.
#![allow(dead_code)]

use super::{free_port, Received};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const SERVER_PY: &str = r#"
import os, sys, itertools, json
maildir, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = json.loads(sys.argv[4])
counter = itertools.count()

def save(rcpt, data):
    n = next(counter)
    path = os.path.join(maildir, "%06d.eml" % n)
    with open(path + ".part", "wb") as f:
        f.write(b"X-Rcpt-Args: <" + rcpt.encode() + b">\r\n")
        f.write(data)
    os.rename(path + ".part", path)

if mode == "stock":
    import smtpd, asyncore
    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kw):
            save(rcpttos[0], data)
    Server(("127.0.0.1", port), None, decode_data=False)
    print("ready", flush=True)
    asyncore.loop()
else:
    import ssl, time
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
    authlog = os.path.join(maildir, "..", "auth.log")
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            save(envelope.rcpt_tos[0], envelope.original_content)
            return "250 2.0.0 Ok: queued"
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            auth_data.login == opts["user"].encode() and auth_data.password == opts["password"].encode()
        with open(authlog, "a") as f:
            # session.ssl: after STARTTLS; the transport's ssl_object: implicit TLS.
            tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            f.write("%s tls=%s ok=%s\n" % (mechanism, tls, ok))
        return AuthResult(success=ok, handled=False)
    context = None
    if opts.get("cert"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(opts["cert"], opts["key"])
    kwargs = dict(
        hostname="127.0.0.1", port=port, decode_data=False,
        authenticator=authenticator if opts.get("user") else None,
        # aiosmtpd counts only STARTTLS as TLS: with implicit TLS it would
        # never offer AUTH.
        auth_require_tls=opts.get("auth_require_tls", True) and not opts.get("implicit"),
        require_starttls=opts.get("require_starttls", False),
    )
    if opts.get("implicit"):
        kwargs["ssl_context"] = context
    elif context is not None:
        kwargs["tls_context"] = context
    Controller(Handler(), **kwargs).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
"#;

/// How an aiosmtpd server is set up.
#[derive(Debug, Clone, Default)]
pub struct AioOptions {
    /// PEM certificate and key: STARTTLS offered (or implicit TLS).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub implicit_tls: bool,
    pub require_starttls: bool,
    /// The one user and password accepted; AUTH offered when set.
    pub auth: Option<(&'static str, &'static str)>,
    /// AUTH offered before STARTTLS too.
    pub auth_before_tls: bool,
    /// Listen here (e.g. a relay restarted on its old port); default: a free port.
    pub port: Option<u16>,
}

pub struct PythonSmtp {
    pub port: u16,
    pub dir: PathBuf,
    tmp: TempDir,
    child: Child,
}

impl PythonSmtp {
    /// Python's stock smtpd: 503 to a second EHLO, no PIPELINING.
    pub fn start_stock() -> Self {
        Self::start(None, "stock", serde_json::json!({}))
    }

    pub fn start_aiosmtpd(o: &AioOptions) -> Self {
        let (cert, key) = o
            .tls
            .clone()
            .map(|(c, k)| (c.display().to_string(), k.display().to_string()))
            .unzip();
        let (user, password) = o.auth.unzip();
        Self::start(
            o.port,
            "aiosmtpd",
            serde_json::json!({
                "cert": cert, "key": key, "implicit": o.implicit_tls,
                "require_starttls": o.require_starttls,
                "user": user, "password": password,
                "auth_require_tls": !o.auth_before_tls,
            }),
        )
    }

    fn start(port: Option<u16>, mode: &str, options: serde_json::Value) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("mail");
        std::fs::create_dir(&dir).expect("mail dir");
        let script = tmp.path().join("server.py");
        std::fs::write(&script, SERVER_PY).expect("write server.py");
        let port = port.unwrap_or_else(free_port);
        let mut child = Command::new("python3")
            .arg("-W")
            .arg("ignore::DeprecationWarning")
            .arg(&script)
            .arg(&dir)
            .arg(port.to_string())
            .arg(mode)
            .arg(options.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is needed for these tests (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the {mode} SMTP server exited ({status}); is aiosmtpd installed (pip install aiosmtpd, as scripts/test.sh does)?");
            }
            assert!(
                Instant::now() < deadline,
                "the {mode} SMTP server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            dir,
            tmp,
            child,
        }
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(Received::parse)
            .collect()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages within {timeout:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every AUTH attempt: `(mechanism, was the session encrypted, accepted)`.
    pub fn auth_attempts(&self) -> Vec<(String, bool, bool)> {
        let log = std::fs::read_to_string(self.tmp.path().join("auth.log")).unwrap_or_default();
        log.lines()
            .map(|l| {
                let mut parts = l.split_whitespace();
                let mechanism = parts.next().unwrap_or_default().to_string();
                let tls = parts.next() == Some("tls=True");
                let ok = parts.next() == Some("ok=True");
                (mechanism, tls, ok)
            })
            .collect()
    }
}

impl Drop for PythonSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a certificate for 127.0.0.1 (and localhost) signed by
/// it, made with the openssl command in a temp dir.
pub struct TestCertificates {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

/// Runs the openssl command in `dir`; its standard output.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .output()
        .expect("the openssl command is needed for these tests (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A relay's self-signed certificate made the common way, with exactly
/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=relay.test`: it
/// says CA:TRUE and names no 127.0.0.1.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

impl SelfSigned {
    pub fn make() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=relay.test",
                "-keyout",
                "relay.key",
                "-out",
                "relay.pem",
            ],
        );
        Self {
            cert: dir.path().join("relay.pem"),
            key: dir.path().join("relay.key"),
            _dir: dir,
        }
    }
}

/// The SHA-256 fingerprint of a PEM certificate as openssl prints it
/// (upper-case hex pairs joined by colons).
pub fn sha256_fingerprint(cert: &Path) -> String {
    let dir = cert.parent().expect("a certificate in a directory");
    let out = openssl(
        dir,
        &[
            "x509",
            "-in",
            &cert.display().to_string(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    out.trim()
        .rsplit_once('=')
        .map(|(_, f)| f.to_string())
        .expect("openssl printed a fingerprint")
}

impl TestCertificates {
    pub fn make() -> Self {
        Self::make_for("IP:127.0.0.1,DNS:localhost")
    }

    /// A private CA and a server certificate for `names` (a
    /// subjectAltName value) signed by it.
    pub fn make_for(names: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            openssl(dir.path(), args);
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=herald test CA"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr);
        std::fs::write(
            p("server.ext"),
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write server.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Self {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
            _dir: dir,
        }
    }
}

impl TestCertificates {
    /// A certificate for the same key and names, signed by the same CA,
    /// that was valid on 2020-01-01 only.
    pub fn expired(&self) -> PathBuf {
        let dir = self._dir.path();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                "server.key",
                "-subj",
                "/CN=127.0.0.1",
                "-out",
                "expired.csr",
            ],
        );
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\ncertificate = ca.pem\nprivate_key = ca.key\nserial = ca.srl\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n",
        )
        .expect("write ca.cnf");
        std::fs::write(dir.join("index.txt"), "").expect("write index.txt");
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-in",
                "expired.csr",
                "-extfile",
                "server.ext",
                "-notext",
                "-out",
                "expired.pem",
            ],
        );
        dir.join("expired.pem")
    }
}

/// The server's URL for herald, with `query` (e.g. "tls=required").
pub fn url(scheme_and_credentials: &str, port: u16, query: &str) -> String {
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme_and_credentials}127.0.0.1:{port}{query}")
}

pub fn ca_param(ca: &Path) -> String {
    format!("ca_file={}", super::urlencode(&ca.display().to_string()))
}
