//! The byte stream under one bench connection: plain TCP, or TLS over TCP (rustls with the
//! *ring* provider, as `serve` uses), and the reads the viewers need from it. Plain bodies
//! are dropped in the kernel (`recv` with `MSG_TRUNC`); TLS bodies must be decrypted, so they
//! are read into the runtime thread's buffer. Also the client trust: the CA certificates of
//! `--cacert` (PEM), or the system's bundle, as curl does; never an "insecure" default.

use loomiere_engine::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Bytes pulled from a socket per read; one such buffer per runtime thread.
pub const READ_BUF: usize = 64 * 1024;

/// The most body bytes one read may drop when reading as fast as possible.
pub const DISCARD_MAX: usize = 1 << 20;

/// Where the system's CA bundle is on Debian and its derivatives (curl's default there).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_BUF].into_boxed_slice());
    /// The length handed to a discarding `recv`. The kernel writes nothing into it, so its
    /// zeroed pages are never touched and cost no memory.
    static DISCARD: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; DISCARD_MAX].into_boxed_slice());
}

/// A connection's byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The client side of TLS for a run: the trusted CAs, made once.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
}

impl Tls {
    /// Trusts the CA certificates in `cacert` (PEM), or the system bundle when `None`.
    pub fn new(cacert: Option<&Path>) -> Result<Tls> {
        let (path, whose) = match cacert {
            Some(p) => (p, "--cacert"),
            None => (Path::new(SYSTEM_CA_BUNDLE), "the system CA bundle"),
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| {
                let why = match e {
                    rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                    other => format!("not valid PEM ({other:?})"),
                };
                let hint = if cacert.is_none() {
                    "; give the CA that signed the server's certificate with --cacert FILE"
                } else {
                    ""
                };
                Error::bad_request(format!("{whose} {}: {why}{hint}", path.display()))
            })?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::bad_request(format!("{whose} {}: no usable CA certificate in it", path.display())));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::bad_request(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { connector: TlsConnector::from(Arc::new(cfg)) })
    }

    /// Runs the handshake on `tcp` for `name` (an IP address or `localhost`).
    pub async fn handshake(&self, name: &str, tcp: TcpStream) -> std::result::Result<Stream, String> {
        let name = ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name:?}: {e}"))?;
        match self.connector.connect(name, tcp).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(e) => Err(tls_error(&e)),
        }
    }
}

/// A handshake failure in words.
fn tls_error(e: &io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(c @ rustls::Error::InvalidCertificate(_)) => {
            format!("TLS handshake failed: the server's certificate is not trusted ({c}); check --cacert")
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {e}"),
    }
}

impl Stream {
    /// The TCP socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Writes all of `buf` (through the TLS session, flushed).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// Bytes that reached this machine and were not read yet (under TLS, still encrypted).
    pub fn queued(&self) -> u64 {
        rustix::io::ioctl_fionread(self.tcp()).unwrap_or(0)
    }

    /// Waits until data comes and reads at most `max` bytes into the thread's buffer, handing
    /// them to `f`. Returns 0 at end of stream.
    pub async fn read_with<R>(&mut self, max: usize, mut f: impl FnMut(&[u8]) -> R) -> io::Result<(usize, R)> {
        match self {
            Stream::Plain(stream) => loop {
                stream.readable().await?;
                let got = BUF.with(|b| {
                    let mut b = b.borrow_mut();
                    let take = max.clamp(1, b.len());
                    match stream.try_read(&mut b[..take]) {
                        Ok(n) => Ok(Some((n, f(&b[..n])))),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                        Err(e) => Err(e),
                    }
                })?;
                if let Some(done) = got {
                    return Ok(done);
                }
            },
            Stream::Tls(stream) => {
                std::future::poll_fn(|cx| {
                    BUF.with(|b| {
                        let mut b = b.borrow_mut();
                        let take = max.clamp(1, b.len());
                        let mut rb = ReadBuf::new(&mut b[..take]);
                        match Pin::new(stream.as_mut()).poll_read(cx, &mut rb) {
                            Poll::Ready(Ok(())) => {
                                let n = rb.filled().len();
                                Poll::Ready(Ok((n, f(rb.filled()))))
                            }
                            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                })
                .await
            }
        }
    }

    /// Waits until data comes and drops at most `max` bytes of it: without copying them on
    /// plain TCP (`MSG_TRUNC`; read into the thread's buffer where the kernel refuses the
    /// flag, `copy` then set), decrypted into the thread's buffer under TLS. Returns 0 at end
    /// of stream.
    pub async fn discard(&mut self, max: usize, copy: &mut bool) -> io::Result<usize> {
        if let Stream::Plain(stream) = self {
            while !*copy {
                stream.readable().await?;
                let got = DISCARD.with(|b| {
                    let mut b = b.borrow_mut();
                    let take = max.clamp(1, b.len());
                    let flags = rustix::net::RecvFlags::TRUNC | rustix::net::RecvFlags::DONTWAIT;
                    stream.try_io(tokio::io::Interest::READABLE, || {
                        rustix::net::recv(&*stream, &mut b[..take], flags)
                            .map(|(_, n)| n.min(take))
                            .map_err(io::Error::from)
                    })
                });
                match got {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e)
                        if [rustix::io::Errno::INVAL, rustix::io::Errno::OPNOTSUPP]
                            .iter()
                            .any(|no| e.raw_os_error() == Some(no.raw_os_error())) =>
                    {
                        *copy = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.read_with(max.min(READ_BUF), |_| ()).await.map(|(n, ())| n)
    }
}
