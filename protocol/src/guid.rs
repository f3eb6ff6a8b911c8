//! GUIDs as ConfigMgr writes them: `505fda07-b4f3-45fb-83d9-8642554e2773` (update IDs, lower case),
//! `{C2D17964-BBDD-4339-B9F3-12D7205B39CC}` (UpdateSource and policy IDs, braced upper case) and
//! `GUID:A1006D0E-…` (SMS client IDs, sometimes with a space after the colon).

use std::fmt;

/// A 128-bit GUID, stored as the number its 32 hex digits spell (so ordering and formatting are
/// plain integer operations).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub u128);

/// Why a GUID did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    #[error("a GUID is 36 characters (38 with braces), got {0}")]
    Length(usize),
    #[error("character {0} of the GUID is not what a GUID has there")]
    Char(usize),
}

/// How a GUID is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuidStyle {
    /// `505fda07-b4f3-45fb-83d9-8642554e2773`: update IDs in state messages.
    #[default]
    Lower,
    /// `A1006D0E-CF56-41D1-A006-6330EFC39381`: SMS IDs after `GUID:`.
    Upper,
    /// `{C2D17964-BBDD-4339-B9F3-12D7205B39CC}`: UpdateSource, policy and message IDs.
    UpperBraced,
}

const HEX_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Positions of the dashes in the 36-character form.
const DASHES: [usize; 4] = [8, 13, 18, 23];

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Eight ASCII hex digits (any case) to their value, or `None` if any is not a hex digit. All
/// eight at once: range checks and nibble packing on one 64-bit word.
fn hex8(chars: [u8; 8]) -> Option<u32> {
    let x = u64::from_be_bytes(chars);
    // Folding 0x20 in makes 'A'-'F' 'a'-'f' and leaves digits as they are.
    // Only 'A'-'F' and 'a'-'f' fold into 'a'-'f'; digits are checked unfolded (0x10-0x19 would
    // fold into '0'-'9').
    let y = x | (LO * 0x20);
    let in_range = |w: u64, lo: u8, hi: u8| {
        (w.wrapping_add(LO * u64::from(0x80 - lo)) & !w.wrapping_add(LO * u64::from(0x7F - hi))) & HI
    };
    let digit = in_range(x, b'0', b'9');
    let alpha = in_range(y, b'a', b'f');
    if x & HI != 0 || digit | alpha != HI {
        return None;
    }
    // Digit bytes: low nibble; letters: low nibble + 9.
    let mut v = (y & (LO * 0x0F)) + (alpha >> 7) * 9;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF;
    Some(v as u32)
}

impl Guid {
    /// Parses a GUID with or without braces, in any case. Surrounding whitespace is not accepted:
    /// callers that read text content trim it first.
    pub fn parse(s: &[u8]) -> Result<Guid, GuidError> {
        let (body, shift) = match s {
            [b'{', body @ .., b'}'] => (body, 1),
            _ => (s, 0),
        };
        if body.len() != 36 {
            return Err(GuidError::Length(s.len()));
        }
        // Decode all 32 digits and check the dashes without branching per character; find the
        // first offending position only when something is wrong.
        let Ok(body) = <&[u8; 36]>::try_from(body) else {
            return Err(GuidError::Length(s.len()));
        };
        let dashes_ok = body[8] == b'-' && body[13] == b'-' && body[18] == b'-' && body[23] == b'-';
        let eight = |a: &[u8], b: &[u8]| {
            let mut w = [0u8; 8];
            w[..a.len()].copy_from_slice(a);
            w[a.len()..].copy_from_slice(b);
            hex8(w)
        };
        let groups = (
            eight(&body[0..8], &[]),
            eight(&body[9..13], &body[14..18]),
            eight(&body[19..23], &body[24..28]),
            eight(&body[28..36], &[]),
        );
        if let (true, (Some(a), Some(b), Some(c), Some(d))) = (dashes_ok, groups) {
            return Ok(Guid(u128::from(a) << 96 | u128::from(b) << 64 | u128::from(c) << 32 | u128::from(d)));
        }
        let first_bad = (0..36)
            .find(
                |&i| if DASHES.contains(&i) { body[i] != b'-' } else { HEX_VALUE[body[i] as usize] == 0xFF },
            )
            .unwrap_or(0);
        Err(GuidError::Char(first_bad + shift))
    }

    /// Parses an SMS client ID: `GUID:<guid>`, `GUID: <guid>` (the seed's client writes the
    /// space), the prefix in any case, or a bare GUID.
    pub fn parse_sms_id(s: &str) -> Result<Guid, GuidError> {
        let s = s.trim();
        let rest = match s.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("GUID:") => s[5..].trim_start(),
            _ => s,
        };
        Guid::parse(rest.as_bytes())
    }

    /// Writes the GUID in `style` into `out` and returns the written bytes.
    pub fn encode(self, style: GuidStyle, out: &mut [u8; 38]) -> &[u8] {
        let digits: &[u8; 16] = match style {
            GuidStyle::Lower => b"0123456789abcdef",
            GuidStyle::Upper | GuidStyle::UpperBraced => b"0123456789ABCDEF",
        };
        let braced = style == GuidStyle::UpperBraced;
        let base = usize::from(braced);
        let mut nibble = 0;
        for i in 0..36 {
            out[base + i] = if DASHES.contains(&i) {
                b'-'
            } else {
                let shift = 124 - 4 * nibble;
                nibble += 1;
                digits[((self.0 >> shift) & 0xF) as usize]
            };
        }
        if braced {
            out[0] = b'{';
            out[37] = b'}';
            &out[..38]
        } else {
            &out[..36]
        }
    }

    /// Appends the GUID in `style` to `out`.
    pub fn push_to(self, style: GuidStyle, out: &mut Vec<u8>) {
        let mut buf = [0u8; 38];
        out.extend_from_slice(self.encode(style, &mut buf));
    }

    /// The GUID as a `String` in `style`.
    pub fn to_string_styled(self, style: GuidStyle) -> String {
        let mut buf = [0u8; 38];
        // Only ASCII hex digits, dashes and braces are written.
        String::from_utf8_lossy(self.encode(style, &mut buf)).into_owned()
    }

    /// A display adapter for `style`.
    pub fn styled(self, style: GuidStyle) -> Styled {
        Styled(self, style)
    }
}

/// Displays a [`Guid`] in a chosen [`GuidStyle`].
#[derive(Debug, Clone, Copy)]
pub struct Styled(Guid, GuidStyle);

impl fmt::Display for Styled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 38];
        let bytes = self.0.encode(self.1, &mut buf);
        f.write_str(std::str::from_utf8(bytes).map_err(|_| fmt::Error)?)
    }
}

/// Upper case without braces, the form that follows `GUID:`.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.styled(GuidStyle::Upper).fmt(f)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({})", self.styled(GuidStyle::Lower))
    }
}

impl std::str::FromStr for Guid {
    type Err = GuidError;
    fn from_str(s: &str) -> Result<Guid, GuidError> {
        Guid::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_form_configmgr_writes() {
        let want = Guid(0x505fda07_b4f3_45fb_83d9_8642554e2773);
        for s in [
            "505fda07-b4f3-45fb-83d9-8642554e2773",
            "505FDA07-B4F3-45FB-83D9-8642554E2773",
            "{505fda07-b4f3-45fb-83d9-8642554e2773}",
            "{505FDA07-b4f3-45FB-83d9-8642554E2773}",
        ] {
            assert_eq!(Guid::parse(s.as_bytes()), Ok(want), "{s}");
        }
        let sms = Guid(0xA1006D0E_CF56_41D1_A006_6330EFC39381);
        for s in [
            "GUID:A1006D0E-CF56-41D1-A006-6330EFC39381",
            "GUID: A1006D0E-CF56-41D1-A006-6330EFC39381",
            "guid:a1006d0e-cf56-41d1-a006-6330efc39381",
            " GUID:A1006D0E-CF56-41D1-A006-6330EFC39381 ",
            "A1006D0E-CF56-41D1-A006-6330EFC39381",
        ] {
            assert_eq!(Guid::parse_sms_id(s), Ok(sms), "{s}");
        }
    }

    #[test]
    fn rejects_near_misses_with_the_position() {
        assert_eq!(Guid::parse(b"not-a-guid"), Err(GuidError::Length(10)));
        assert_eq!(Guid::parse(b"505fda07-b4f3-45fb-83d9-8642554e277g"), Err(GuidError::Char(35)));
        assert_eq!(Guid::parse(b"505fda07xb4f3-45fb-83d9-8642554e2773"), Err(GuidError::Char(8)));
        assert_eq!(Guid::parse(b"{505fda07-b4f3-45fb-83d9-8642554e2773"), Err(GuidError::Length(37)));
        assert_eq!(Guid::parse(b"{505fda07-b4f3-45fb-83d9+8642554e2773}"), Err(GuidError::Char(24)));
        assert!(Guid::parse_sms_id("GUID:").is_err());
        assert!(Guid::parse(b"").is_err());
    }

    #[test]
    fn hex8_agrees_with_the_table_on_every_byte() {
        for pos in 0..8 {
            for c in 0..=255u8 {
                let mut w = *b"0123abCD";
                w[pos] = c;
                let want = w.iter().try_fold(0u32, |acc, &d| {
                    let v = HEX_VALUE[d as usize];
                    (v != 0xFF).then(|| acc << 4 | u32::from(v))
                });
                assert_eq!(hex8(w), want, "{w:?}");
            }
        }
        assert_eq!(hex8(*b"FFFFFFFF"), Some(u32::MAX));
        assert_eq!(hex8(*b"00000000"), Some(0));
    }

    #[test]
    fn formats_each_style() {
        let g = Guid(0xC2D17964_BBDD_4339_B9F3_12D7205B39CC);
        assert_eq!(g.to_string_styled(GuidStyle::UpperBraced), "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}");
        assert_eq!(g.styled(GuidStyle::Lower).to_string(), "c2d17964-bbdd-4339-b9f3-12d7205b39cc");
        assert_eq!(g.to_string(), "C2D17964-BBDD-4339-B9F3-12D7205B39CC");
        assert_eq!(Guid(0).to_string(), "00000000-0000-0000-0000-000000000000");
    }

    /// Every single-character substitution of a valid GUID is either still a GUID (a hex digit
    /// swapped for another) or rejected at exactly that position.
    #[test]
    fn every_substitution_is_caught_where_it_is() {
        let base = *b"505fda07-b4f3-45fb-83d9-8642554e2773";
        for pos in 0..base.len() {
            for c in 0..=255u8 {
                let mut s = base;
                s[pos] = c;
                let dash = DASHES.contains(&pos);
                let ok = if dash { c == b'-' } else { c.is_ascii_hexdigit() };
                match Guid::parse(&s) {
                    Ok(_) => assert!(ok, "{pos} {c}"),
                    Err(e) => {
                        assert!(!ok, "{pos} {c}");
                        assert_eq!(e, GuidError::Char(pos));
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn round_trips_in_every_style(v: u128) {
            let g = Guid(v);
            for style in [GuidStyle::Lower, GuidStyle::Upper, GuidStyle::UpperBraced] {
                let s = g.to_string_styled(style);
                prop_assert_eq!(Guid::parse(s.as_bytes()), Ok(g));
            }
            prop_assert_eq!(Guid::parse_sms_id(&format!("GUID:{g}")), Ok(g));
        }
    }
}
