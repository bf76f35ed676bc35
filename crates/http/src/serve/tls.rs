//! HTTPS for `serve`: the rustls server configuration made from the `[tls]` certificate chain
//! and key (PEM), with rustls's defaults — TLS 1.2 and 1.3 only, its modern cipher suites —
//! and ALPN `http/1.1`. The files are read at start-up (an error there is fatal) and again
//! on SIGHUP; a reload that fails is logged and the certificate in force stays.

use crate::config::{Config, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// The acceptor in force, swapped on reload.
pub struct Tls {
    acceptor: Mutex<TlsAcceptor>,
}

/// Reads the chain and key and makes a server configuration.
pub fn load(t: &TlsConfig) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.certificate)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls certificate {}: {}", t.certificate.display(), pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!("tls certificate {}: no PEM certificate in it", t.certificate.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&t.key).map_err(|e| format!("tls key {}: {}", t.key.display(), pem_error(&e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls certificate {} and key {}: {e}", t.certificate.display(), t.key.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// A PEM reading error in words, without the os-error tail.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => crate::error::plain_io(io),
        E::NoItemsFound => "no PEM item of the kind needed in it".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

impl Tls {
    /// The acceptor for `t`, or why not.
    pub fn new(t: &TlsConfig) -> Result<Tls, String> {
        Ok(Tls { acceptor: Mutex::new(load(t)?) })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the files named by the configuration in force (SIGHUP); on failure the log
    /// says why and the certificate in force stays.
    pub fn reload(&self, cfg: &Config) {
        let Some(t) = &cfg.tls else { return };
        match load(t) {
            Ok(a) => {
                *self.acceptor.lock().unwrap_or_else(|p| p.into_inner()) = a;
                cfg.log("tls certificate reloaded");
            }
            Err(e) => cfg.log(&format!("tls certificate not reloaded, the one in force stays: {e}")),
        }
    }
}
