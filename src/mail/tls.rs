//! Which certificates herald trusts toward an SMTP server, what it tells
//! the operator when a certificate is refused, and the TLS stream it hands
//! lettre for implicit TLS.
//!
//! Trusted: the public roots compiled into herald (webpki-roots), the
//! system's bundle (`SSL_CERT_FILE`, else the distribution's file), and the
//! server's own `ca_file=` (a private CA). A certificate that is itself in
//! `ca_file` is accepted as it stands, so a relay's self-signed certificate
//! (`openssl req -x509` makes one with `CA:TRUE`, which chain validation
//! refuses as a server's certificate) works when given there. `tls_pin=`
//! trusts exactly the certificates in that file and nothing else: no public
//! root, no name or date check, only the relay that holds the pinned
//! certificate's key (the handshake's signature proves it).
//!
//! Implicit TLS runs herald's verifier in the handshake. lettre's STARTTLS
//! takes no custom verifier, so with `ca_file=` or `tls_pin=` it is told to
//! accept the handshake (whose signature it still checks) and herald
//! verifies the certificate chain the relay presented right after, before
//! anything but EHLO was sent: a refused relay never sees AUTH or a message.
//! Without either, lettre verifies in the handshake against the same roots.

use super::target::{Security, SmtpTarget};
use super::Error;
use lettre::transport::smtp::client::{
    AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::WebPkiSupportedAlgorithms;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Where distributions keep the system's CA bundle, first found wins.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The TLS settings of one server, built once.
#[derive(Clone)]
pub struct Trust {
    starttls: TlsParameters,
    implicit: tokio_rustls::TlsConnector,
    /// Checks the chain after STARTTLS (with `ca_file` or `tls_pin`).
    check_after_starttls: Option<Arc<Verifier>>,
}

/// How the certificates to trust were given, for the operator's hints.
#[derive(Debug, Clone)]
enum Given {
    Roots,
    CaFile(PathBuf),
    Pin(PathBuf),
}

impl Trust {
    /// Roots for `host`: public, system, and `ca_file` when given; or only
    /// the certificates of `tls_pin`. An unreadable or empty file is an
    /// error; a missing system bundle is not.
    pub fn new(host: &str, ca_file: Option<&Path>, tls_pin: Option<&Path>) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut store = rustls::RootCertStore::empty();
        let mut accepted: Vec<CertificateDer<'static>> = Vec::new();
        let mut pins: Vec<CertificateDer<'static>> = Vec::new();
        let given = match (ca_file, tls_pin) {
            (Some(_), Some(_)) => {
                return Err(Error::SmtpServers(
                    "ca_file= and tls_pin= together: give one (tls_pin= trusts only the relay's own certificate; ca_file= adds a CA to the public ones)".into(),
                ))
            }
            (_, Some(pin)) => {
                pins = read_certificates("tls_pin", pin)?;
                Given::Pin(pin.to_path_buf())
            }
            (ca_file, None) => {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(bundle) = system_bundle() {
                    match read_pem(&bundle) {
                        // A malformed certificate in a system bundle is
                        // skipped, as OpenSSL does.
                        Ok(certs) => certs.into_iter().for_each(|c| {
                            if store.add(c.clone()).is_ok() {
                                accepted.push(c);
                            }
                        }),
                        Err(e) => {
                            tracing::warn!(bundle = %bundle.display(), error = %e, "could not read the system's CA bundle; using the built-in roots")
                        }
                    }
                }
                match ca_file {
                    Some(path) => {
                        let certs = read_certificates("ca_file", path)?;
                        for c in &certs {
                            // A certificate the chain check cannot use as a
                            // root is still trusted as the relay's own.
                            if store.add(c.clone()).is_ok() {
                                accepted.push(c.clone());
                            }
                        }
                        pins = certs;
                        Given::CaFile(path.to_path_buf())
                    }
                    None => Given::Roots,
                }
            }
        };
        let chain = match given {
            Given::Pin(_) => None,
            _ => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| Error::SmtpServers(format!("TLS setup for {host}: {e}")))?,
            ),
        };
        let verifier = Arc::new(Verifier {
            chain,
            pins,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::SmtpServers(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let check_after_starttls = match given {
            Given::Roots => None,
            _ => Some(verifier),
        };
        let builder = match check_after_starttls {
            // lettre still checks the handshake's signature; herald checks
            // the certificate itself right after (`check_after_starttls`).
            Some(_) => TlsParameters::builder(host.to_string())
                .certificate_store(CertificateStore::None)
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true),
            None => accepted
                .into_iter()
                .filter_map(|c| Certificate::from_der(c.to_vec()).ok())
                .fold(TlsParameters::builder(host.to_string()), |b, c| {
                    b.add_root_certificate(c)
                })
                .certificate_store(CertificateStore::Default),
        };
        let starttls = builder
            .build_rustls()
            .map_err(|e| Error::SmtpServers(format!("TLS setup for {host}: {e}")))?;
        Ok(Self {
            starttls,
            implicit: tokio_rustls::TlsConnector::from(Arc::new(config)),
            check_after_starttls,
        })
    }

    pub fn starttls(&self) -> TlsParameters {
        self.starttls.clone()
    }

    pub fn implicit(&self) -> &tokio_rustls::TlsConnector {
        &self.implicit
    }

    /// Whether lettre's STARTTLS leaves the certificate to herald.
    pub fn checks_after_starttls(&self) -> bool {
        self.check_after_starttls.is_some()
    }

    /// After STARTTLS: the chain the relay presented (end-entity first),
    /// checked as the implicit-TLS handshake checks it. Ok when lettre
    /// already verified it in the handshake.
    pub fn check_after_starttls(&self, host: &str, chain: &[Vec<u8>]) -> Result<(), rustls::Error> {
        let Some(verifier) = &self.check_after_starttls else {
            return Ok(());
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| rustls::Error::General(format!("{host:?} is not a host name")))?;
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        verifier
            .verify_server_cert(
                &CertificateDer::from(end_entity.as_slice()),
                &intermediates,
                &name,
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }
}

/// Accepts a certificate that is one of `pins` as it stands; else the
/// chain check (public, system and `ca_file` roots, and the host name),
/// when there is one. The handshake's signature is always verified with
/// the crypto provider's algorithms.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pins
            .iter()
            .any(|pin| pin.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned {
                    presented_sha256: sha256_hex(end_entity.as_ref()),
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The relay presented another certificate than the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the relay's certificate (SHA-256 {presented_sha256}) is not the pinned one")]
struct NotPinned {
    presented_sha256: String,
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn system_bundle() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(file));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))
}

/// The certificates of `ca_file=` or `tls_pin=`: at least one.
fn read_certificates(param: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let what = match param {
        "tls_pin" => "the relay's own certificate",
        _ => {
            "the CA certificate that signed the relay's certificate, or the relay's own certificate"
        }
    };
    let certs = read_pem(path).map_err(|e| {
        Error::SmtpServers(format!(
            "{param}={}: {e}; give the path of a PEM file holding {what}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::SmtpServers(format!(
            "{param}={}: no PEM certificate in it (a \"-----BEGIN CERTIFICATE-----\" block); give the path of a PEM file holding {what}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The certificate error in `e`'s chain, if the failure is one: the
/// server's certificate is not trusted or does not match the host, a
/// configuration error and not a network hiccup.
pub fn certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let is_certificate = |r: &rustls::Error| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return is_certificate(r).then(|| r.clone());
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(r) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return is_certificate(r).then(|| r.clone());
            }
        }
        cause = c.source();
    }
    None
}

/// What is wrong with the relay's certificate and what the operator can do
/// about it, one sentence each, for `host:port` reached with `target`'s
/// settings.
pub fn explain_certificate_error(t: &SmtpTarget, error: &rustls::Error) -> String {
    let (host, port) = (t.host.as_str(), t.port);
    let given = match (t.ca_file.as_deref(), t.tls_pin.as_deref()) {
        (_, Some(pin)) => Given::Pin(pin.to_path_buf()),
        (Some(ca), None) => Given::CaFile(ca.to_path_buf()),
        (None, None) => Given::Roots,
    };
    let starttls = if t.security == Security::Implicit {
        ""
    } else {
        " -starttls smtp"
    };
    let pin_it = format!("pin the relay's own certificate with tls_pin=/path/relay.pem in the server's URL (`openssl s_client -connect {host}:{port}{starttls}` shows it)");
    let (what, todo) = match error {
        rustls::Error::InvalidCertificate(kind) => match kind {
            CertificateError::UnknownIssuer => (
                "it is not signed by a CA herald trusts".to_string(),
                match &given {
                    Given::CaFile(ca) => format!(
                        "the CA in ca_file={} did not sign it: give the CA that did, or {pin_it}",
                        ca.display()
                    ),
                    _ => format!(
                        "give the CA that signed it with ca_file=/path/ca.pem in the server's URL, or {pin_it}"
                    ),
                },
            ),
            CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. } => {
                let presented = match kind {
                    CertificateError::NotValidForNameContext { presented, .. }
                        if !presented.is_empty() =>
                    {
                        presented
                            .iter()
                            .map(|name| plain_name(name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                    _ => "other names".to_string(),
                };
                (
                    format!("it is for {presented}, not for {host}"),
                    format!("write a name the certificate holds as the host in the server's URL, or have the relay's certificate include {host}"),
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                match kind {
                    CertificateError::ExpiredContext { not_after, .. } => format!(
                        "it expired at {}",
                        crate::domain::time::format_rfc3339(not_after.as_secs() as i64 * 1000)
                    ),
                    _ => "it has expired".to_string(),
                },
                "renew the relay's certificate (and check this machine's clock)".to_string(),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                "it is not valid yet".to_string(),
                "check the clock of this machine and of the relay".to_string(),
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                "it is not made for a TLS server (its extended key usage lacks serverAuth)".to_string(),
                format!("give the relay a server certificate, or {pin_it}"),
            ),
            CertificateError::Other(other) => {
                if let Some(not_pinned) = other.0.downcast_ref::<NotPinned>() {
                    let pin = match &given {
                        Given::Pin(p) => p.display().to_string(),
                        _ => "…".into(),
                    };
                    (
                        not_pinned.to_string(),
                        format!("if the relay's certificate was replaced, put the new one in tls_pin={pin}; else something else answers at {host}:{port}"),
                    )
                } else if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) {
                    (
                        "this certificate is a self-signed one made as a CA (CA:TRUE, as `openssl req -x509` makes), which chain validation refuses as a server's certificate".to_string(),
                        match &given {
                            Given::CaFile(ca) => format!(
                                "ca_file={} does not hold this certificate: {pin_it}",
                                ca.display()
                            ),
                            _ => pin_it.clone(),
                        },
                    )
                } else {
                    (
                        format!("{other}"),
                        format!("give the CA that signed it with ca_file=/path/ca.pem, or {pin_it}"),
                    )
                }
            }
            other => (
                format!("{other:?}"),
                format!("give the CA that signed it with ca_file=/path/ca.pem, or {pin_it}"),
            ),
        },
        rustls::Error::NoCertificatesPresented => (
            "the relay presented no certificate".to_string(),
            "configure a certificate on the relay".to_string(),
        ),
        other => (
            other.to_string(),
            format!("give the CA that signed it with ca_file=/path/ca.pem, or {pin_it}"),
        ),
    };
    format!("TLS certificate of {host}:{port} not trusted: {what}; {todo}")
}

/// `relay.test` for the `DnsName("relay.test")` the verifier reports.
fn plain_name(presented: &str) -> String {
    [("DnsName(\"", "\")"), ("IpAddress(", ")")]
        .iter()
        .find_map(|(head, tail)| presented.strip_prefix(head)?.strip_suffix(tail))
        .unwrap_or(presented)
        .to_string()
}

/// A TLS stream lettre can drive (implicit TLS, opened by herald).
#[derive(Debug)]
pub struct TlsStream(pub tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
