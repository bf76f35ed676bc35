//! Pacing a stream: burst, then rate. [`Pacer`] is pure arithmetic over (bytes sent, time
//! elapsed) → "send up to N bytes now" or "wait this long", so the async server can drive it
//! with its own timers; [`send_paced`] is the blocking driver (CGI, inetd): it sleeps, never
//! spins, and notices a client that hung up while it sleeps. Which pace an answer gets (the
//! throttle factor, the burst) is the HTTP side's policy (`loomiere-http`'s `throttle`).

use super::{CopyMethod, Cursor};
use crate::plan::{Plan, PlanInfo};
use std::io;
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// The smallest wait worth sleeping for; shorter debts are sent at once.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// The longest single sleep, so a hung-up client is noticed promptly even at low rates.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// A blocking write that took this long waited for its reader; the next step checks the
/// source again (a non-blocking driver learns the same from `WouldBlock`).
const BLOCKED: Duration = Duration::from_millis(5);

/// What a paced sender should do next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Send at most this many bytes now (> 0).
    Send(u64),
    /// Nothing may be sent before this much time has passed.
    Wait(Duration),
}

/// Burst-then-rate arithmetic for one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Pacer {
    /// Bytes that may go at once, from the start of the stream.
    pub burst: u64,
    /// Bytes per second after the burst (> 0).
    pub rate: f64,
    /// Bytes worth waking up for (avoids many tiny writes at high rates).
    pub quantum: u64,
    /// Once this many bytes are sent, the rest goes unpaced (a whole MP4's `moov` after its
    /// media); `u64::MAX` when never.
    pub unpaced_from: u64,
}

impl Pacer {
    /// A pacer that allows `burst` bytes at once and then `rate` bytes per second.
    pub fn new(burst: u64, rate: f64) -> Pacer {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        // A tenth of a second's worth, between 4 KiB and 256 KiB.
        let quantum = (rate / 10.0).clamp(4096.0, 262_144.0) as u64;
        Pacer { burst, rate, quantum, unpaced_from: u64::MAX }
    }

    /// The pacer for sending output bytes `range` of a plan described by `info` (total
    /// `plan_len`), under a throttle `factor` and `burst_seconds`; `None` when unthrottled.
    pub fn for_output(
        factor: f64,
        burst_seconds: f64,
        info: &PlanInfo,
        plan_len: u64,
        range: &Range<u64>,
    ) -> Option<Pacer> {
        if !(factor.is_finite() && factor > 0.0) {
            return None;
        }
        let bps = info.bytes_per_second(plan_len)?;
        // A file that claims a vanishing duration is sent unpaced, not at 1 B/s.
        if !(bps.is_finite() && bps > 0.0 && (bps * factor).is_finite()) {
            return None;
        }
        // The header inside the range bursts, and so do `burst_seconds` of media from
        // wherever the range starts; what follows the media (a whole file's trailing moov)
        // goes unpaced once it is reached.
        let media = info.media_range(plan_len);
        let header = media.start.min(range.end).saturating_sub(range.start);
        let media_burst = (bps * burst_seconds.max(0.0)).min(u64::MAX as f64 / 2.0) as u64;
        let mut pacer = Pacer::new(header.saturating_add(media_burst), bps * factor);
        if range.end > media.end {
            pacer.unpaced_from = media.end.saturating_sub(range.start);
        }
        Some(pacer)
    }

    /// Bytes that may have been sent `elapsed` after the stream began.
    pub fn allowed(&self, elapsed: Duration) -> u64 {
        let paced = self.rate * elapsed.as_secs_f64();
        self.burst.saturating_add(paced.min(u64::MAX as f64 / 2.0) as u64)
    }

    /// What to do when `sent` bytes have gone out `elapsed` after the start.
    pub fn next(&self, sent: u64, elapsed: Duration) -> Pace {
        if sent >= self.unpaced_from {
            return Pace::Send(u64::MAX - sent);
        }
        let allowed = self.allowed(elapsed);
        if allowed > sent {
            return Pace::Send(allowed - sent);
        }
        // Wait until a quantum beyond what was sent is allowed.
        let target = sent.saturating_add(self.quantum).saturating_sub(self.burst) as f64 / self.rate;
        let wait = Duration::from_secs_f64(target.min(1e9)).saturating_sub(elapsed);
        Pace::Wait(wait.max(MIN_WAIT))
    }
}

/// Sends output bytes `range` of `plan` to a blocking descriptor, paced by `pacer` (`None`:
/// as fast as the descriptor takes it). Returns the bytes sent. While waiting it polls `out`
/// for an error or hang-up (a pipe whose reader went away), so a departed client ends the
/// stream within a fraction of a second instead of after the next write.
pub fn send_paced(plan: &Plan, range: Range<u64>, out: BorrowedFd<'_>, pacer: Option<&Pacer>) -> io::Result<u64> {
    send(plan, range, out, pacer, |_| {})
}

/// The one blocking send loop (`send_range`, `send_paced`): write steps of at most what
/// `pacer` allows, sleeping (hang-up aware) when it says wait; `progress` gets the running
/// byte count after each step. Retries `Interrupted`.
pub(super) fn send(
    plan: &Plan,
    range: Range<u64>,
    out: BorrowedFd<'_>,
    pacer: Option<&Pacer>,
    mut progress: impl FnMut(u64),
) -> io::Result<u64> {
    let mut cur = Cursor::new(range);
    let mut scratch = vec![0u8; super::SCRATCH];
    let mut method = CopyMethod::for_output(out);
    let began = Instant::now();
    let mut sent = 0u64;
    while !cur.is_done() {
        let budget = match pacer.map(|p| p.next(sent, began.elapsed())) {
            None => u64::MAX,
            Some(Pace::Send(budget)) => budget,
            Some(Pace::Wait(d)) => {
                wait_unless_hung_up(out, d.min(MAX_WAIT))?;
                // The file may have changed while the stream slept.
                cur.recheck();
                continue;
            }
        };
        let began_step = Instant::now();
        let step = super::write_step(plan, &mut cur, out, budget, &mut scratch, &mut method);
        if began_step.elapsed() >= BLOCKED {
            // The write blocked on a slow reader: the file may have changed meanwhile.
            cur.recheck();
        }
        match step {
            Ok(n) => {
                sent += n;
                progress(sent);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Sleeps for `d`, returning `BrokenPipe` early if `out` reports an error or hang-up.
fn wait_unless_hung_up(out: BorrowedFd<'_>, d: Duration) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::from_borrowed_fd(out, PollFlags::empty())];
    let ts = Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) };
    match poll(&mut fds, Some(&ts)) {
        Ok(0) => Ok(()),
        Ok(_) => {
            let ev = fds[0].revents();
            if ev.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "client hung up"))
            } else {
                // Nothing we asked for; sleep the rest plainly.
                std::thread::sleep(d);
                Ok(())
            }
        }
        Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => {
            // poll unusable on this descriptor: fall back to a plain sleep.
            let _ = e;
            std::thread::sleep(d);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let p = Pacer::new(1000, 100_000.0);
        assert_eq!(p.next(0, Duration::ZERO), Pace::Send(1000));
        assert!(matches!(p.next(1000, Duration::ZERO), Pace::Wait(_)));
        // After 1 s: 1000 + 100000 allowed.
        assert_eq!(p.next(1000, Duration::from_secs(1)), Pace::Send(100_000));
        let Pace::Wait(w) = p.next(101_000, Duration::from_secs(1)) else { panic!() };
        // One quantum (10000 bytes) at 100 kB/s = 0.1 s.
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn long_run_average_is_the_rate() {
        let p = Pacer::new(0, 50_000.0);
        let (mut sent, mut t) = (0u64, Duration::ZERO);
        while t < Duration::from_secs(10) {
            match p.next(sent, t) {
                Pace::Send(n) => sent += n.min(7000),
                Pace::Wait(d) => t += d,
            }
        }
        let rate = sent as f64 / t.as_secs_f64();
        assert!((rate - 50_000.0).abs() < 2_000.0, "{rate}");
    }

    #[test]
    fn off_without_factor_or_duration() {
        let info = PlanInfo { duration: Some(10.0), header_len: 100, ..PlanInfo::default() };
        assert!(Pacer::for_output(0.0, 5.0, &info, 1100, &(0..1100)).is_none());
        assert!(Pacer::for_output(f64::NAN, 5.0, &info, 1100, &(0..1100)).is_none());
        let img = PlanInfo::default();
        assert!(Pacer::for_output(1.0, 5.0, &img, 1100, &(0..1100)).is_none());
        // 1000 media bytes over 10 s = 100 B/s; burst = header 100 + 5 s × 100.
        let p = Pacer::for_output(2.0, 5.0, &info, 1100, &(0..1100)).unwrap();
        assert_eq!(p.burst, 600);
        assert_eq!(p.rate, 200.0);
        // A range past the header bursts only media.
        let p = Pacer::for_output(2.0, 5.0, &info, 1100, &(500..1100)).unwrap();
        assert_eq!(p.burst, 500);
    }

    #[test]
    fn a_trailing_index_is_not_media_and_bursts() {
        // A whole MP4 with its moov at the end: 100 header bytes, 1000 media bytes over 10 s,
        // a 400-byte moov after them.
        let info = PlanInfo { duration: Some(10.0), header_len: 100, trailer_len: 400, ..PlanInfo::default() };
        let p = Pacer::for_output(1.0, 2.0, &info, 1500, &(0..1500)).unwrap();
        assert_eq!(p.rate, 100.0);
        assert_eq!(p.burst, 100 + 200);
        assert_eq!(p.unpaced_from, 1100);
        assert!(matches!(p.next(300, Duration::ZERO), Pace::Wait(_)));
        assert!(matches!(p.next(1100, Duration::ZERO), Pace::Send(n) if n >= 400));
        // The moov alone (what a player fetches first) goes at once.
        let p = Pacer::for_output(1.0, 2.0, &info, 1500, &(1100..1500)).unwrap();
        assert_eq!(p.unpaced_from, 0);
        assert!(matches!(p.next(0, Duration::ZERO), Pace::Send(n) if n >= 400));
        // A range in the middle of the media: its own burst of media only.
        let p = Pacer::for_output(1.0, 2.0, &info, 1500, &(600..900)).unwrap();
        assert_eq!((p.burst, p.unpaced_from), (200, u64::MAX));
    }
}
