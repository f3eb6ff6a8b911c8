//! Limits on the names clients choose for themselves, shared by every reader and writer.
//!
//! Clients name themselves (`Netbios Name` in a registration, `NetBIOSName` in a Report) and say
//! where they are (`ADSite Name` in a location request). Windows caps NetBIOS names at 15
//! characters and Active Directory caps site names at 63; some clients send their DNS host label
//! (63 characters at most) where the NetBIOS name belongs. The MP refuses longer names (HTTP 400,
//! nothing written), so no reader or writer downstream ever sees one; [`clip`] keeps any other
//! source (an SMX file dropped by hand) within the same bound without cutting a character.

/// The longest NetBIOS name taken, in characters: a DNS host label's limit (the NetBIOS limit is
/// 15; clients that send their host label instead must not be refused).
pub const MAX_NETBIOS_NAME: usize = 63;
/// The longest AD site name taken, in characters (Active Directory's limit).
pub const MAX_AD_SITE: usize = 63;
/// The most UTF-8 bytes a name within either limit takes.
pub const MAX_NAME_BYTES: usize = 4 * 63;

/// Whether `name` is within `max` characters.
pub fn fits(name: &str, max: usize) -> bool {
    name.len() <= max || name.chars().nth(max).is_none()
}

/// `s` cut to at most `max_bytes` bytes, at a character boundary.
pub fn clip(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_count_characters() {
        assert!(fits(&"é".repeat(63), MAX_AD_SITE));
        assert!(!fits(&"é".repeat(64), MAX_AD_SITE));
        assert!(fits("", MAX_NETBIOS_NAME));
        assert_eq!(clip(&format!("{}é", "a".repeat(65_534)), 65_535).len(), 65_534);
        assert!("é".repeat(63).len() <= MAX_NAME_BYTES);
    }

    proptest! {
        #[test]
        fn clip_never_cuts_a_character(s in ".{0,40}", max in 0usize..100) {
            let c = clip(&s, max);
            prop_assert!(c.len() <= max && s.starts_with(c));
            prop_assert!(c.len() + 4 > max || c.len() == s.len());
        }
    }
}
