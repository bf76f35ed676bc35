//! How long a simulated viewer watches before leaving (`--watch`): to the end, a fixed time,
//! a uniform range, or the `retention` model — a stylised audience-retention shape (many
//! viewers leave in the first seconds and the first minute, a long tail stays to the end;
//! docs/bench.md gives the shares and the source). Pure: parsing and sampling from a seeded
//! random source, so runs with the same seed draw the same viewers.

use loomiere_engine::{Error, Result};

/// Longest watch time accepted, seconds (a day, like the longest run).
const MAX_WATCH: f64 = 86_400.0;

/// A watch-time distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Watch {
    /// Every viewer watches to the end (or to the end of the run).
    All,
    /// Every viewer leaves after this many seconds of playback.
    Fixed(f64),
    /// Uniformly between the two, seconds.
    Uniform(f64, f64),
    /// The retention model: see [`Watch::sample`].
    Retention,
}

impl Watch {
    /// Parses `all`, `retention`, `S` or `A..B` (seconds of playback).
    pub fn parse(text: &str) -> Result<Watch> {
        let bad = || {
            Error::bad_request(format!(
                "--watch {text:?}: want all, retention, a number of seconds (90) or a range (30..600)"
            ))
        };
        let secs = |s: &str| -> Result<f64> {
            let v: f64 = s.trim().parse().map_err(|_| bad())?;
            if v.is_finite() && (0.0..=MAX_WATCH).contains(&v) {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        match text.trim() {
            "all" => Ok(Watch::All),
            "retention" => Ok(Watch::Retention),
            t => match t.split_once("..") {
                Some((a, b)) => {
                    let (a, b) = (secs(a)?, secs(b)?);
                    if a > b {
                        return Err(bad());
                    }
                    Ok(Watch::Uniform(a, b))
                }
                None => Ok(Watch::Fixed(secs(t)?)),
            },
        }
    }

    /// Seconds of playback before the viewer leaves; `None` = to the end. `unit` draws
    /// uniformly from `[0, 1)`.
    ///
    /// The retention model: 20 % leave within the first 10 s, 30 % between 10 s and a
    /// minute, 35 % after the first minute with an exponential tail of mean 5 minutes, 15 %
    /// watch to the end.
    pub fn sample(self, mut unit: impl FnMut() -> f64) -> Option<f64> {
        match self {
            Watch::All => None,
            Watch::Fixed(s) => Some(s),
            Watch::Uniform(a, b) => Some(a + (b - a) * unit()),
            Watch::Retention => {
                let who = unit();
                let u = unit();
                if who < 0.20 {
                    Some(10.0 * u)
                } else if who < 0.50 {
                    Some(10.0 + 50.0 * u)
                } else if who < 0.85 {
                    Some((60.0 - 300.0 * (1.0 - u).ln()).min(MAX_WATCH))
                } else {
                    None
                }
            }
        }
    }

    /// The name used in reports.
    pub fn describe(self) -> String {
        match self {
            Watch::All => "all".into(),
            Watch::Fixed(s) => format!("{s}"),
            Watch::Uniform(a, b) => format!("{a}..{b}"),
            Watch::Retention => "retention".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_and_refuses_the_rest() {
        assert_eq!(Watch::parse("all").unwrap(), Watch::All);
        assert_eq!(Watch::parse("retention").unwrap(), Watch::Retention);
        assert_eq!(Watch::parse("90").unwrap(), Watch::Fixed(90.0));
        assert_eq!(Watch::parse("30..600").unwrap(), Watch::Uniform(30.0, 600.0));
        for bad in ["", "-1", "nan", "inf", "600..30", "1..", "..5", "1e9", "some", "1..2..3"] {
            assert!(Watch::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_has_the_documented_shape() {
        let mut seed = 7u64;
        let mut unit = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 100_000;
        let draws: Vec<Option<f64>> = (0..n).map(|_| Watch::Retention.sample(&mut unit)).collect();
        let share = |f: &dyn Fn(&Option<f64>) -> bool| draws.iter().filter(|d| f(d)).count() as f64 / n as f64;
        assert!((share(&|d| d.is_some_and(|s| s < 10.0)) - 0.20).abs() < 0.01);
        assert!((share(&|d| d.is_some_and(|s| s < 60.0)) - 0.50).abs() < 0.01);
        assert!((share(&|d| d.is_none()) - 0.15).abs() < 0.01);
        let tail: Vec<f64> = draws.iter().flatten().copied().filter(|&s| s >= 60.0).collect();
        let mean = tail.iter().sum::<f64>() / tail.len() as f64;
        assert!((mean - 360.0).abs() < 15.0, "{mean}");
        assert!(draws.iter().flatten().all(|s| (0.0..=MAX_WATCH).contains(s)));
        let mut u = || 0.5;
        assert_eq!(Watch::Uniform(30.0, 600.0).sample(&mut u), Some(315.0));
    }
}
