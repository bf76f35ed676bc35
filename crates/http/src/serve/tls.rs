//! HTTPS for `serve`: the rustls server configuration made from the `[tls]` certificate chain
//! and key (PEM), with rustls's defaults — TLS 1.2 and 1.3 only, its modern cipher suites —
//! and ALPN `http/1.1`. The files are read at start-up (an error there is fatal) and again
//! on SIGHUP; a reload that fails is logged and the certificate in force stays.
//!
//! One `ServerConfig` (an `Arc`) serves every handshake until the next reload. Returning
//! viewers resume their session without the certificate's signature: TLS 1.3 with stateless
//! tickets (rustls's ticketer: random keys, rotated every 6 hours, kept in memory only and
//! across reloads), TLS 1.2 with tickets or rustls's cache of 256 session ids.

use crate::config::{Config, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ProducesTickets;
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// The acceptor in force, swapped on reload.
pub struct Tls {
    acceptor: Mutex<TlsAcceptor>,
    /// Session tickets' keys, kept across reloads so that tickets stay valid.
    tickets: Arc<dyn ProducesTickets>,
}

/// A session ticketer (random keys, rotated every 6 hours).
pub fn ticketer() -> Result<Arc<dyn ProducesTickets>, String> {
    rustls::crypto::ring::Ticketer::new().map_err(|e| format!("tls session tickets: {e}"))
}

/// Reads the chain and key and makes a server configuration issuing `tickets`.
pub fn load(t: &TlsConfig, tickets: &Arc<dyn ProducesTickets>) -> Result<TlsAcceptor, String> {
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
    cfg.ticketer = tickets.clone();
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
        let tickets = ticketer()?;
        Ok(Tls { acceptor: Mutex::new(load(t, &tickets)?), tickets })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the files named by the configuration in force (SIGHUP); on failure the log
    /// says why and the certificate in force stays.
    pub fn reload(&self, cfg: &Config) {
        let Some(t) = &cfg.tls else { return };
        match load(t, &self.tickets) {
            Ok(a) => {
                *self.acceptor.lock().unwrap_or_else(|p| p.into_inner()) = a;
                cfg.log("tls certificate reloaded");
            }
            Err(e) => cfg.log(&format!("tls certificate not reloaded, the one in force stays: {e}")),
        }
    }
}
