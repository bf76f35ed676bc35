//! The byte stream under one connection of `serve`: plain TCP, or TLS over TCP (rustls).
//! Plan bodies go zero-copy with `sendfile` on plain TCP ([`super::send::send_plan`]); under
//! TLS the bytes must pass through the process to be encrypted. A TLS connection then holds
//! no plaintext of its own: each step is read into the runtime thread's scratch buffer
//! ([`crate::sink::read_step`]), encrypted at once through rustls's synchronous writer, and
//! offered to the socket in the same synchronous go; the next step follows only when the
//! socket took all of it. Ciphertext the socket did not take waits in rustls (at most
//! [`TLS_STEP`], its buffer limit) and is flushed before anything more is encrypted, which
//! happens only once the socket is writable again.

use crate::plan::Plan;
use crate::throttle::{Pace, Pacer};
use rustls::ServerConnection;
use std::io::{self, Write};
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plaintext encrypted per step under TLS (four full 16 KiB records), and rustls's limit on
/// the ciphertext it buffers for a connection: what a TLS viewer whose socket is full holds.
pub const TLS_STEP: usize = 64 * 1024;

/// The most bytes encrypted between two yields, step after step while the socket takes each
/// one whole, so one fast reader cannot hog a runtime thread.
const TLS_TURN: u64 = 256 * 1024;

/// A client connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// A TLS connection after its handshake, its rustls send buffer limited to [`TLS_STEP`].
    pub fn tls(mut s: tokio_rustls::server::TlsStream<TcpStream>) -> Stream {
        s.get_mut().1.set_buffer_limit(Some(TLS_STEP));
        Stream::Tls(Box::new(s))
    }

    /// Reads what is already there without waiting: `WouldBlock` when nothing is.
    pub fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut rb = ReadBuf::new(buf);
                match Pin::new(s.as_mut()).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => Ok(rb.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Sends output bytes `range` of `plan`, paced by `pacer` when given, counting what went
    /// in `sent` (also on error).
    pub async fn send_plan(
        &mut self,
        plan: &Plan,
        range: Range<u64>,
        pacer: Option<&Pacer>,
        sent: &mut u64,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(s) => super::send::send_plan(s, plan, range, pacer, sent).await,
            Stream::Tls(s) => {
                let (tcp, conn) = s.get_mut();
                send_encrypted(tcp, conn, plan, range, pacer, sent).await
            }
        }
    }
}

/// The TLS path: wait until rustls's ciphertext has left and the socket can take more, then
/// read, encrypt and offer steps in one synchronous go while the socket takes them whole (up
/// to what the pacer allows, at most [`TLS_TURN`]), then yield. `sent` counts the
/// plaintext handed to rustls (encrypted and in the socket, or in rustls's bounded buffer).
async fn send_encrypted(
    tcp: &TcpStream,
    conn: &mut ServerConnection,
    plan: &Plan,
    range: Range<u64>,
    pacer: Option<&Pacer>,
    sent: &mut u64,
) -> io::Result<()> {
    let began = Instant::now();
    let mut pos = range.start;
    while pos < range.end {
        flush(tcp, conn).await?;
        let budget = match pacer.map(|p| p.next(*sent, began.elapsed())) {
            None => TLS_TURN,
            Some(Pace::Send(n)) => n.clamp(1, TLS_TURN),
            Some(Pace::Wait(d)) => {
                tokio::time::sleep(d).await;
                continue;
            }
        };
        tcp.writable().await?;
        let n = encrypt_while_taken(tcp, conn, plan, pos, budget.min(range.end - pos), sent)?;
        pos += n;
        // As the plain path: a client that keeps draining must not hold the runtime thread.
        tokio::task::yield_now().await;
    }
    flush(tcp, conn).await
}

/// Encrypts and offers up to `budget` bytes of `plan` from `pos`, a step at a time, the next
/// step only when the socket took all of the last; returns the bytes handed to rustls (also
/// added to `sent` as they go).
fn encrypt_while_taken(
    tcp: &TcpStream,
    conn: &mut ServerConnection,
    plan: &Plan,
    pos: u64,
    budget: u64,
    sent: &mut u64,
) -> io::Result<u64> {
    let mut done = 0;
    while done < budget {
        let n = encrypt_step(plan, pos + done, (budget - done).min(TLS_STEP as u64), conn)?;
        done += n;
        *sent += n;
        offer(tcp, conn)?;
        if conn.wants_write() {
            break; // the socket is full: the rest waits for it
        }
    }
    Ok(done)
}

/// Reads `len` (≤ [`TLS_STEP`]) output bytes of `plan` at `pos` into the thread's scratch
/// buffer and encrypts them into `conn`; returns how many rustls took (all of them when its
/// buffer was empty, as [`send_encrypted`] sees to).
fn encrypt_step(plan: &Plan, pos: u64, len: u64, conn: &mut ServerConnection) -> io::Result<u64> {
    super::send::with_scratch(|scratch| {
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(TLS_STEP).min(scratch.len());
        let Some(bytes) = scratch.get_mut(..len).filter(|b| !b.is_empty()) else {
            return Err(io::Error::other("nothing to encrypt: an empty step or scratch buffer"));
        };
        crate::sink::read_step(plan, pos, bytes)?;
        match conn.writer().write(bytes)? {
            0 => Err(io::Error::new(io::ErrorKind::WriteZero, "the TLS session took no bytes")),
            n => Ok(n as u64),
        }
    })
}

/// Writes what ciphertext the socket takes now, without waiting.
fn offer(tcp: &TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut NowOrNever(tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until all ciphertext rustls holds is in the socket.
async fn flush(tcp: &TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        tcp.writable().await?;
        offer(tcp, conn)?;
    }
    Ok(())
}

/// The socket as a synchronous writer that never waits: a full socket is `WouldBlock`
/// (which also clears tokio's readiness, so the next `writable()` really waits).
struct NowOrNever<'a>(&'a TcpStream);

impl Write for NowOrNever<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsConfig;
    use crate::plan::{Bytes, Piece, PlanInfo};
    use rustls::pki_types::pem::PemObject;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA and a certificate for 127.0.0.1 signed by it, made with `openssl` (which the
    /// tests need, as tests/ops.rs does): (ca, cert, key).
    fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let p = |f: &str| dir.join(f);
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl is needed by this test (scripts/deps.sh installs it)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat());
        run(&[&["req"][..], &ec, &["-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "csr.pem"]].concat());
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "csr.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]);
        (p("ca.pem"), p("cert.pem"), p("key.pem"))
    }

    /// A plan of a synthesised header longer than a step and a file range of varied bytes.
    fn plan(dir: &Path, synth: usize, len: usize) -> Plan {
        let path = dir.join("media");
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let header: Vec<u8> = (0..synth).map(|i| (i % 239) as u8 ^ 0x5a).collect();
        let pieces = vec![Piece::Synth(Arc::new(Bytes(header))), Piece::Source { offset: 0, len: len as u64 }];
        let src = crate::source::Source::nameless(file, len as u64);
        Plan::new(src, pieces, PlanInfo { duration: Some(2.0), header_len: synth as u64, ..PlanInfo::default() })
            .unwrap()
    }

    /// A server acceptor as `serve` makes it and a client trusting its CA.
    fn endpoints(dir: &Path) -> (tokio_rustls::TlsAcceptor, tokio_rustls::TlsConnector) {
        let (ca, certificate, key) = certificate(dir);
        let listen = "127.0.0.1:0".parse().unwrap();
        let tickets = super::super::tls::ticketer().unwrap();
        let acceptor = super::super::tls::load(&TlsConfig { listen, certificate, key }, &tickets).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(&ca).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (acceptor, tokio_rustls::TlsConnector::from(Arc::new(client)))
    }

    /// Sends output `range` of `plan` over TLS on loopback; returns the plaintext the client
    /// read and the seconds the send took.
    fn transfer(tag: &str, plan: &Plan, range: Range<u64>, pacer: Option<Pacer>) -> (Vec<u8>, f64) {
        let dir = std::env::temp_dir().join(format!("loomiere-tls-send-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (acceptor, connector) = endpoints(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = async {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut stream = Stream::tls(acceptor.accept(tcp).await.unwrap());
                let began = Instant::now();
                let mut sent = 0;
                stream.send_plan(plan, range.clone(), pacer.as_ref(), &mut sent).await.unwrap();
                let secs = began.elapsed().as_secs_f64();
                assert_eq!(sent, range.end - range.start);
                stream.shutdown().await.unwrap();
                secs
            };
            let reader = async {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let mut tls = connector.connect(name, tcp).await.unwrap();
                let mut all = Vec::new();
                tls.read_to_end(&mut all).await.unwrap();
                all
            };
            let (secs, got) = tokio::join!(server, reader);
            (got, secs)
        });
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn tls_body_arrives_whole_and_in_order() {
        let dir = std::env::temp_dir().join(format!("loomiere-tls-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A header of 2.5 steps, then 12 steps of file bytes, neither aligned to a step.
        let p = plan(&dir, TLS_STEP * 5 / 2 + 7, TLS_STEP * 12 + 3);
        let (got, _) = transfer("whole", &p, 0..p.len(), None);
        assert_eq!(got.len() as u64, p.len());
        assert!(got == crate::sink::read_range(&p, 0..p.len()).unwrap(), "the bytes differ from the plan's");
        // A range starting inside the header and ending inside the file bytes.
        let r = 1000..p.len() - 5000;
        let (got, _) = transfer("range", &p, r.clone(), None);
        assert!(got == crate::sink::read_range(&p, r).unwrap(), "the range's bytes differ from the plan's");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paced_tls_stream_is_not_faster_than_its_rate() {
        let dir = std::env::temp_dir().join(format!("loomiere-tls-paced-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 200 kB after a 20 kB burst at 200 kB/s: at least 0.9 s (a lower bound only, which a
        // slow machine cannot break).
        let p = plan(&dir, 6, 200_000);
        let (got, secs) = transfer("paced", &p, 0..p.len(), Some(Pacer::new(20_000, 200_000.0)));
        assert!(got == crate::sink::read_range(&p, 0..p.len()).unwrap(), "the bytes differ from the plan's");
        assert!(secs >= 0.85, "took {secs:.2} s");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_returning_client_resumes_its_session() {
        let dir = std::env::temp_dir().join(format!("loomiere-tls-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (acceptor, connector) = endpoints(&dir);
        let p = plan(&dir, 6, 1000);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let kinds = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let server = async {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let mut stream = Stream::tls(acceptor.accept(tcp).await.unwrap());
                    stream.send_plan(&p, 0..p.len(), None, &mut 0).await.unwrap();
                    stream.shutdown().await.unwrap();
                };
                let client = async {
                    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                    let mut tls = connector.connect(name, tcp).await.unwrap();
                    tls.read_to_end(&mut Vec::new()).await.unwrap(); // the tickets come after the handshake
                    tls.get_ref().1.handshake_kind()
                };
                kinds.push(tokio::join!(server, client).1);
            }
            kinds
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(kinds, [Some(rustls::HandshakeKind::Full), Some(rustls::HandshakeKind::Resumed)]);
    }
}
