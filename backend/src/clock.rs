//! The site clock: product intervals (StateSys pause, summarization schedules, aged status) run on
//! site time, which runs `scale` times faster than real time, so a load run that compresses
//! client time compresses the site's too.

use std::time::{Duration, Instant};

use protocol::Timestamp;

/// Site time, derived from a monotonic real clock. Cheap to copy and share.
#[derive(Debug, Clone, Copy)]
pub struct SiteClock {
    /// Real instant at which site time was `origin`.
    real_origin: Instant,
    origin: Timestamp,
    /// Site seconds per real second (1 = real time).
    scale: f64,
}

impl SiteClock {
    /// Site time starting at `origin` now, running `scale` times faster than real time.
    ///
    /// # Panics
    /// If `scale` is not a finite positive number (callers validate user input first).
    pub fn new(origin: Timestamp, scale: f64) -> SiteClock {
        assert!(scale.is_finite() && scale > 0.0, "time scale must be positive, got {scale}");
        SiteClock { real_origin: Instant::now(), origin, scale }
    }

    /// Site time running at real speed from the system's current UTC time.
    pub fn real_time() -> SiteClock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        SiteClock::new(Timestamp(now), 1.0)
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The site time at real instant `at`.
    pub fn at(&self, at: Instant) -> Timestamp {
        let real = at.saturating_duration_since(self.real_origin);
        Timestamp(self.origin.0 + (real.as_secs_f64() * self.scale * 1e6) as i64)
    }

    /// The site time now.
    pub fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The real duration that `site` of site time takes.
    pub fn real(&self, site: Duration) -> Duration {
        site.div_f64(self.scale)
    }

    /// The real instant at which site time reaches `t` (now, if it has passed).
    pub fn real_instant(&self, t: Timestamp) -> Instant {
        let ahead = (t.0 - self.origin.0).max(0) as f64 / 1e6 / self.scale;
        self.real_origin + Duration::from_secs_f64(ahead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_maps_both_ways() {
        let origin = Timestamp::from_unix_seconds(1_390_238_335);
        let clock = SiteClock::new(origin, 60.0);
        let t0 = clock.real_origin;
        // One real second is one site minute.
        assert_eq!(clock.at(t0 + Duration::from_secs(1)), Timestamp(origin.0 + 60_000_000));
        assert_eq!(clock.real(Duration::from_secs(3600)), Duration::from_secs(60));
        let hour_later = Timestamp(origin.0 + 3_600_000_000);
        assert_eq!(clock.real_instant(hour_later), t0 + Duration::from_secs(60));
        assert_eq!(clock.real_instant(Timestamp(0)), t0, "the past maps to the origin");
        assert!(clock.now() >= origin);
    }

    #[test]
    #[should_panic(expected = "time scale must be positive")]
    fn zero_scale_is_refused() {
        SiteClock::new(Timestamp(0), 0.0);
    }
}
