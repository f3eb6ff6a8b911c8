//! Instants as ConfigMgr writes them: CIM datetimes (`20140120171855.573000+000`, WMI's
//! `yyyymmddHHMMSS.ffffff+UUU` with the UTC offset in minutes) in state messages and reports, and
//! ISO 8601 (`2014-01-20T12:18:09Z`) in the CCM message header.

use std::fmt;

/// An instant in microseconds since 1970-01-01T00:00:00Z. Years 1 to 9999 are representable in
/// both text forms.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(pub i64);

/// Why a datetime did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("a CIM datetime is 25 characters (yyyymmddHHMMSS.ffffff+UUU), got {0}")]
    Length(usize),
    #[error("character {0} of the datetime is not a digit or separator where one belongs")]
    Char(usize),
    #[error("the date or time is out of range (month, day, hour, minute or second)")]
    Range,
}

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Reads `N` ASCII digits at `at`; the error names the first offending position.
fn digits<const N: usize>(s: &[u8], at: usize) -> Result<u32, TimeError> {
    let mut v = 0u32;
    for (i, &c) in s.iter().enumerate().skip(at).take(N) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(TimeError::Char(i));
        }
        v = v * 10 + u32::from(d);
    }
    Ok(v)
}

fn expect(s: &[u8], at: usize, c: u8) -> Result<(), TimeError> {
    if s[at] == c { Ok(()) } else { Err(TimeError::Char(at)) }
}

/// Date and time fields, checked.
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl Fields {
    fn to_timestamp(&self) -> Result<Timestamp, TimeError> {
        let year = i64::from(self.year);
        if year < 1
            || !(1..=12).contains(&self.month)
            || self.day < 1
            || self.day > days_in_month(year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return Err(TimeError::Range);
        }
        let days = days_from_civil(year, self.month, self.day);
        let secs = days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Ok(Timestamp(secs * MICROS_PER_SEC + i64::from(self.micros)))
    }
}

impl Timestamp {
    /// Parses a CIM datetime, `yyyymmddHHMMSS.ffffff±UUU`. The offset is in minutes east of UTC
    /// (local = UTC + offset), so `+060` means one hour ahead of UTC.
    pub fn parse_cim(s: &[u8]) -> Result<Timestamp, TimeError> {
        let Ok(s) = <&[u8; 25]>::try_from(s) else {
            return Err(TimeError::Length(s.len()));
        };
        // Check every digit position at once; find the offending one only on failure.
        let mut d = [0u8; 25];
        let mut bad = 0u8;
        for (i, (slot, &c)) in d.iter_mut().zip(s).enumerate() {
            *slot = c.wrapping_sub(b'0');
            bad |= u8::from(*slot > 9 && i != 14 && i != 21);
        }
        let sign = match s[21] {
            b'+' => 1,
            b'-' => -1,
            _ => 0,
        };
        if bad != 0 || s[14] != b'.' || sign == 0 {
            return Err(Self::cim_error(s));
        }
        let n = |from: usize, len: usize| {
            d[from..from + len].iter().fold(0u32, |acc, &v| acc * 10 + u32::from(v))
        };
        let fields = Fields {
            year: n(0, 4),
            month: n(4, 2),
            day: n(6, 2),
            hour: n(8, 2),
            minute: n(10, 2),
            second: n(12, 2),
            micros: n(15, 6),
        };
        let offset_minutes = i64::from(n(22, 3));
        let local = fields.to_timestamp()?;
        Ok(Timestamp(local.0 - sign * offset_minutes * 60 * MICROS_PER_SEC))
    }

    /// The first offending character of a 25-byte text that is not a CIM datetime.
    #[cold]
    fn cim_error(s: &[u8; 25]) -> TimeError {
        let at = (0..25).find(|&i| match i {
            14 => s[i] != b'.',
            21 => !matches!(s[i], b'+' | b'-'),
            _ => !s[i].is_ascii_digit(),
        });
        TimeError::Char(at.unwrap_or(0))
    }

    /// Parses ISO 8601 UTC as the CCM header writes it: `2014-01-20T12:18:09Z`, optionally with
    /// fractional seconds (up to 6 digits kept).
    pub fn parse_iso(s: &[u8]) -> Result<Timestamp, TimeError> {
        if s.len() < 20 {
            return Err(TimeError::Length(s.len()));
        }
        expect(s, 4, b'-')?;
        expect(s, 7, b'-')?;
        expect(s, 10, b'T')?;
        expect(s, 13, b':')?;
        expect(s, 16, b':')?;
        let mut micros = 0;
        let mut at = 19;
        if s[at] == b'.' {
            at += 1;
            let mut scale = 100_000;
            while at < s.len() && s[at].is_ascii_digit() {
                micros += u32::from(s[at] - b'0') * scale;
                scale /= 10;
                at += 1;
            }
        }
        if at + 1 != s.len() || s[at] != b'Z' {
            return Err(TimeError::Char(at.min(s.len() - 1)));
        }
        Fields {
            year: digits::<4>(s, 0)?,
            month: digits::<2>(s, 5)?,
            day: digits::<2>(s, 8)?,
            hour: digits::<2>(s, 11)?,
            minute: digits::<2>(s, 14)?,
            second: digits::<2>(s, 17)?,
            micros,
        }
        .to_timestamp()
    }

    /// Seconds since the Unix epoch (floor).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SEC)
    }

    /// From seconds since the Unix epoch.
    pub fn from_unix_seconds(secs: i64) -> Timestamp {
        Timestamp(secs * MICROS_PER_SEC)
    }

    fn parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.0.div_euclid(MICROS_PER_SEC);
        let micros = self.0.rem_euclid(MICROS_PER_SEC) as u32;
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, micros)
    }

    /// Writes the CIM form with offset `+000` (25 bytes) into `out`.
    pub fn encode_cim(self, out: &mut [u8; 25]) {
        let (y, mo, d, h, mi, s, us) = self.parts();
        put_digits(&mut out[0..4], y.clamp(0, 9999) as u32);
        put_digits(&mut out[4..6], mo);
        put_digits(&mut out[6..8], d);
        put_digits(&mut out[8..10], h);
        put_digits(&mut out[10..12], mi);
        put_digits(&mut out[12..14], s);
        out[14] = b'.';
        put_digits(&mut out[15..21], us);
        out[21..25].copy_from_slice(b"+000");
    }

    /// The CIM form with offset `+000`.
    pub fn to_cim(self) -> String {
        let mut buf = [0u8; 25];
        self.encode_cim(&mut buf);
        buf.iter().map(|&b| b as char).collect()
    }

    /// ISO 8601 UTC to the second, as the CCM header writes it: `2014-01-20T12:18:09Z`.
    pub fn to_iso_seconds(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// RFC 3339 UTC with milliseconds, for JSON: `2014-01-20T17:18:55.573Z`.
    pub fn to_rfc3339(self) -> String {
        let (y, mo, d, h, mi, s, us) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", us / 1000)
    }
}

fn put_digits(out: &mut [u8], mut v: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, us) = self.parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seed_message_time() {
        let t = Timestamp::parse_cim(b"20140120171855.573000+000").unwrap();
        assert_eq!(t.unix_seconds(), 1_390_238_335);
        assert_eq!(t.0 % MICROS_PER_SEC, 573_000);
        assert_eq!(t.to_cim(), "20140120171855.573000+000");
        assert_eq!(t.to_rfc3339(), "2014-01-20T17:18:55.573Z");
    }

    #[test]
    fn offsets_are_minutes_east_of_utc() {
        let utc = Timestamp::parse_cim(b"20140120171855.573000+000").unwrap();
        let east = Timestamp::parse_cim(b"20140120181855.573000+060").unwrap();
        let west = Timestamp::parse_cim(b"20140120121855.573000-300").unwrap();
        assert_eq!(east, utc);
        assert_eq!(west, utc);
    }

    #[test]
    fn rejects_what_is_not_a_cim_datetime() {
        assert_eq!(Timestamp::parse_cim(b"2014-01-20 17:18"), Err(TimeError::Length(16)));
        assert_eq!(Timestamp::parse_cim(b"20140120171855,573000+000"), Err(TimeError::Char(14)));
        assert_eq!(Timestamp::parse_cim(b"20140120171855.573000*000"), Err(TimeError::Char(21)));
        assert_eq!(Timestamp::parse_cim(b"2014012017185x.573000+000"), Err(TimeError::Char(13)));
        for bad in [
            &b"20141320171855.573000+000"[..],
            b"20140230171855.573000+000",
            b"20130229171855.573000+000",
            b"20140120241855.573000+000",
            b"20140120176055.573000+000",
            b"20140120171860.573000+000",
            b"00000120171855.573000+000",
            b"20140100171855.573000+000",
        ] {
            assert_eq!(Timestamp::parse_cim(bad), Err(TimeError::Range));
        }
        assert!(Timestamp::parse_cim(b"20000229000000.000000+000").is_ok());
        assert!(Timestamp::parse_cim(b"19000229000000.000000+000").is_err());
    }

    /// Every day of years 1 to 9999 against a plain running day count.
    #[test]
    fn every_day_of_the_calendar() {
        let mut days = days_from_civil(1, 1, 1);
        assert_eq!(days, -719_162);
        for year in 1..=9999i64 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), days);
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn iso_header_times() {
        let t = Timestamp::parse_iso(b"2014-01-20T12:18:09Z").unwrap();
        assert_eq!(t.to_iso_seconds(), "2014-01-20T12:18:09Z");
        let f = Timestamp::parse_iso(b"2014-01-20T12:18:09.5Z").unwrap();
        assert_eq!(f.0 - t.0, 500_000);
        assert!(Timestamp::parse_iso(b"2014-01-20 12:18:09Z").is_err());
        assert!(Timestamp::parse_iso(b"2014-01-20T12:18:09").is_err());
        assert!(Timestamp::parse_iso(b"2014-01-20T12:18:09Zx").is_err());
    }

    proptest! {
        /// Years 1..=9999 round-trip through the CIM text at microsecond precision.
        #[test]
        fn cim_round_trip(micros in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let t = Timestamp(micros);
            let text = t.to_cim();
            prop_assert_eq!(Timestamp::parse_cim(text.as_bytes()), Ok(t));
        }

        #[test]
        fn iso_round_trip(secs in -62_135_596_800i64..253_402_300_799) {
            let t = Timestamp::from_unix_seconds(secs);
            prop_assert_eq!(Timestamp::parse_iso(t.to_iso_seconds().as_bytes()), Ok(t));
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Timestamp::parse_cim(&s);
            let _ = Timestamp::parse_iso(&s);
        }
    }
}
