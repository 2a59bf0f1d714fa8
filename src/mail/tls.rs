//! Which certificates herald trusts toward an SMTP server, and the TLS
//! stream it hands lettre for implicit TLS.
//!
//! Trusted: the public roots compiled into herald (webpki-roots), the
//! system's bundle (`SSL_CERT_FILE`, else the distribution's file), and the
//! server's own `ca_file=` (a private CA or a self-signed certificate). The
//! roots are read once, when the mailer is built, and serve STARTTLS (through
//! lettre's `TlsParameters`) and implicit TLS (through tokio-rustls) alike.

use super::Error;
use lettre::transport::smtp::client::{
    AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

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
}

impl Trust {
    /// Roots for `host`: public, system, and `ca_file` when given (an
    /// unreadable or empty `ca_file` is an error; a missing system bundle
    /// is not).
    pub fn new(host: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let mut store = rustls::RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Besides the compiled-in public roots (lettre's default store too).
        let mut accepted: Vec<CertificateDer<'static>> = Vec::new();
        let mut trust = |cert: CertificateDer<'static>| {
            let is_added = store.add(cert.clone()).is_ok();
            if is_added {
                accepted.push(cert);
            }
            is_added
        };
        if let Some(bundle) = system_bundle() {
            match read_pem(&bundle) {
                // A malformed certificate in a system bundle is skipped, as
                // OpenSSL does.
                Ok(certs) => certs.into_iter().for_each(|c| {
                    let _ = trust(c);
                }),
                Err(e) => {
                    tracing::warn!(bundle = %bundle.display(), error = %e, "could not read the system's CA bundle; using the built-in roots")
                }
            }
        }
        if let Some(path) = ca_file {
            let certs = read_pem(path)
                .map_err(|e| Error::SmtpServers(format!("ca_file {}: {e}", path.display())))?;
            let added = certs.into_iter().map(&mut trust).filter(|is| *is).count();
            if added == 0 {
                return Err(Error::SmtpServers(format!(
                    "ca_file {}: no usable PEM certificate in it",
                    path.display()
                )));
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::SmtpServers(format!("TLS setup: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
        let starttls = accepted
            .into_iter()
            .filter_map(|c| Certificate::from_der(c.to_vec()).ok())
            .fold(TlsParameters::builder(host.to_string()), |b, c| {
                b.add_root_certificate(c)
            })
            .certificate_store(CertificateStore::Default)
            .build_rustls()
            .map_err(|e| Error::SmtpServers(format!("TLS setup for {host}: {e}")))?;
        Ok(Self {
            starttls,
            implicit: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    pub fn starttls(&self) -> TlsParameters {
        self.starttls.clone()
    }

    pub fn implicit(&self) -> &tokio_rustls::TlsConnector {
        &self.implicit
    }
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

/// Whether a failure is the server's certificate not being trusted (or not
/// matching the host): a configuration error, not a network hiccup.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                    return matches!(
                        r,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    );
                }
            }
        }
        cause = c.source();
    }
    false
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
