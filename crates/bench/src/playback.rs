//! A simulated player's clock: playback starts with the first body byte and consumes the
//! stream at its playback rate (bytes per second); the buffer is what has arrived minus what
//! has been played. When data arrives after the buffer ran dry, that is a stall: the player
//! waited, so the clock is paused for the missing time and the stall is counted. Pure
//! arithmetic over instants, so it is unit-tested without sockets or sleeps. Only media bytes
//! count: the prefix (moov, FLV header and metadata) is read before the player starts.

use std::time::{Duration, Instant};

/// Buffer shortfalls smaller than this are timer noise, not stalls.
const TOLERANCE: f64 = 0.001;

/// Playback state of one stream.
#[derive(Clone, Debug)]
pub struct Playback {
    rate: f64,
    started: Instant,
    paused: f64,
    received: u64,
}

/// A stall that was detected when data arrived.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    /// How long playback had been waiting, in seconds.
    pub seconds: f64,
}

impl Playback {
    /// A player that starts playing at `first_byte` at `rate` bytes per second (> 0).
    pub fn new(rate: f64, first_byte: Instant) -> Playback {
        Playback { rate, started: first_byte, paused: 0.0, received: 0 }
    }

    /// Seconds of media played by `now`.
    fn played(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.started).as_secs_f64() - self.paused
    }

    /// Bytes per second of playback.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Media bytes received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Seconds of media the viewer has seen by `now`: the clock, but never past what arrived.
    pub fn position(&self, now: Instant) -> f64 {
        self.played(now).min(self.received as f64 / self.rate).max(0.0)
    }

    /// How long until the player's clock reaches `at` seconds (zero if it has).
    pub fn until_position(&self, now: Instant, at: f64) -> Duration {
        let left = at - self.played(now);
        if left > 0.0 {
            Duration::from_secs_f64(left.min(86_400.0))
        } else {
            Duration::ZERO
        }
    }

    /// Seconds of media buffered at `now` (negative once the player has run dry).
    pub fn buffered(&self, now: Instant) -> f64 {
        self.received as f64 / self.rate - self.played(now)
    }

    /// Records `bytes` arriving at `now`; reports a stall when the buffer had run dry.
    pub fn on_data(&mut self, now: Instant, bytes: u64) -> Option<Stall> {
        let buffered = self.buffered(now);
        let stall = if buffered < -TOLERANCE {
            self.paused += -buffered;
            Some(Stall { seconds: -buffered })
        } else {
            None
        };
        self.received = self.received.saturating_add(bytes);
        stall
    }

    /// How long a reader pacing itself at the playback rate should wait before reading
    /// again so that no more than `ahead` seconds are buffered.
    pub fn wait_before_read(&self, now: Instant, ahead: f64) -> Duration {
        let excess = self.buffered(now) - ahead;
        if excess > 0.0 {
            Duration::from_secs_f64(excess.min(3600.0))
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_data_never_stalls() {
        let t0 = Instant::now();
        let mut p = Playback::new(1000.0, t0);
        // 1000 bytes every second, arriving exactly on time.
        for s in 0..10u64 {
            assert_eq!(p.on_data(t0 + Duration::from_secs(s), 1000), None);
        }
        assert!((p.buffered(t0 + Duration::from_secs(10)) - 0.0).abs() < 1e-9);
    }

    #[test]
    fn late_data_is_a_stall_and_pauses_the_clock() {
        let t0 = Instant::now();
        let mut p = Playback::new(1000.0, t0);
        assert_eq!(p.on_data(t0, 500), None); // half a second buffered
        let stall = p.on_data(t0 + Duration::from_secs(2), 500).unwrap();
        assert!((stall.seconds - 1.5).abs() < 1e-9);
        // After the stall the player resumes from where it stopped: 0.5 s buffered again.
        assert!((p.buffered(t0 + Duration::from_secs(2)) - 0.5).abs() < 1e-9);
        assert_eq!(p.on_data(t0 + Duration::from_millis(2400), 100), None);
    }

    #[test]
    fn position_never_passes_what_arrived() {
        let t0 = Instant::now();
        let mut p = Playback::new(1000.0, t0);
        p.on_data(t0, 2000); // 2 s of media
        assert!((p.position(t0 + Duration::from_secs(1)) - 1.0).abs() < 1e-9);
        assert!((p.position(t0 + Duration::from_secs(5)) - 2.0).abs() < 1e-9, "stalled at 2 s");
        assert!((p.until_position(t0, 1.5).as_secs_f64() - 1.5).abs() < 1e-9);
        assert_eq!(p.until_position(t0 + Duration::from_secs(3), 1.5), Duration::ZERO);
        assert_eq!((p.rate(), p.received()), (1000.0, 2000));
    }

    #[test]
    fn pacing_waits_for_the_excess() {
        let t0 = Instant::now();
        let mut p = Playback::new(100.0, t0);
        p.on_data(t0, 1000); // 10 s buffered
        let w = p.wait_before_read(t0 + Duration::from_secs(1), 4.0);
        assert!((w.as_secs_f64() - 5.0).abs() < 1e-6);
        assert_eq!(p.wait_before_read(t0 + Duration::from_secs(7), 4.0), Duration::ZERO);
    }
}
