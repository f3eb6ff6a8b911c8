//! Discovery records: what a registration or a location request taught the site about a client
//! (its SMS ID, name, AD site and boundary groups), made durable in the same segments as the
//! Reports before the MP answers, as the product's DDRs go through an inbox. StateSys applies
//! them on replay; applying one twice changes nothing.
//!
//! ```text
//! "SUMSTORM-DISCOVERY/1\n" | id u128 | time i64 | name len u16 + bytes
//!   | location flag u8 (+ AD site len u16 + bytes, boundary groups u64)
//! ```
//! Little-endian. A Report record starts with `<` or a BOM, so the two never mix up.

use protocol::Guid;

use crate::site::Location;

const MAGIC: &[u8] = b"SUMSTORM-DISCOVERY/1\n";

/// One client's discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub client: Guid,
    pub netbios_name: String,
    pub location: Option<Location>,
    /// Site time, microseconds.
    pub time: i64,
}

/// Whether a segment record is a discovery record (rather than a Report).
pub fn is_discovery(record: &[u8]) -> bool {
    record.starts_with(MAGIC)
}

/// `len u16 + bytes`, never cut inside a character (the MP refuses names anywhere near the
/// bound; this only makes sure whatever is written reads back).
fn put_text(out: &mut Vec<u8>, text: &str) {
    let text = protocol::names::clip(text, u16::MAX as usize);
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

impl Discovery {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.client.0.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        put_text(&mut out, &self.netbios_name);
        match &self.location {
            None => out.push(0),
            Some(l) => {
                out.push(1);
                put_text(&mut out, &l.ad_site);
                out.extend_from_slice(&l.boundary_groups.to_le_bytes());
            }
        }
        out
    }

    /// `None` for anything that is not a whole, valid record.
    pub fn decode(record: &[u8]) -> Option<Discovery> {
        let mut at = record.strip_prefix(MAGIC)?;
        let mut take = |n: usize| {
            let (head, rest) = at.split_at_checked(n)?;
            at = rest;
            Some(head)
        };
        let client = Guid(u128::from_le_bytes(take(16)?.try_into().ok()?));
        let time = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        let netbios_name = std::str::from_utf8(take(len)?).ok()?.to_owned();
        let location = match take(1)?[0] {
            0 => None,
            1 => {
                let len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
                let ad_site = std::str::from_utf8(take(len)?).ok()?.into();
                let boundary_groups = u64::from_le_bytes(take(8)?.try_into().ok()?);
                Some(Location { ad_site, boundary_groups })
            }
            _ => return None,
        };
        at.is_empty().then_some(Discovery { client, netbios_name, location, time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(id in any::<u128>(), time in any::<i64>(), name in ".{0,20}", site in proptest::option::of((".{0,20}", any::<u64>()))) {
            let d = Discovery {
                client: Guid(id),
                netbios_name: name,
                location: site.map(|(s, g)| Location { ad_site: s.into(), boundary_groups: g }),
                time,
            };
            let bytes = d.encode();
            prop_assert!(is_discovery(&bytes));
            prop_assert_eq!(Discovery::decode(&bytes), Some(d));
            // Every truncation and any extra byte are refused, never misread.
            for cut in 0..bytes.len() {
                prop_assert_eq!(Discovery::decode(&bytes[..cut]), None);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(Discovery::decode(&longer), None);
        }

        /// Whatever is encoded decodes, whatever the name: a cut at 65,535 bytes never falls
        /// inside a character.
        #[test]
        fn long_names_decode(n in 65_500usize..65_540, c in any::<char>(), site in proptest::option::of(0usize..70_000)) {
            let name = format!("{}{c}", "A".repeat(n));
            let d = Discovery {
                client: Guid(1),
                netbios_name: name.clone(),
                location: site.map(|n| Location { ad_site: "ü".repeat(n / 2).into(), boundary_groups: 1 }),
                time: 0,
            };
            let back = Discovery::decode(&d.encode());
            prop_assert!(back.is_some());
            let back = back.unwrap();
            prop_assert!(name.starts_with(&back.netbios_name) && back.netbios_name.len() <= u16::MAX as usize);
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = Discovery::decode(&bytes);
        }
    }
}
