//! The NTLM exchange of `/ccm_system_windowsauth` (MS-NLMP), as far as this MP can take it: a
//! client's NEGOTIATE_MESSAGE gets a well-formed CHALLENGE_MESSAGE (so a client that continues
//! the exchange can), and its AUTHENTICATE_MESSAGE is refused, because there is no domain here
//! to check an account against. Nothing is ever granted.

// The client's blob decides offsets here: no indexing that can panic.
#![warn(clippy::indexing_slicing)]

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | ALWAYS_SIGN | TARGET_TYPE_DOMAIN |
/// EXTENDED_SESSIONSECURITY | TARGET_INFO | VERSION | 128 | KEY_EXCH | 56.
pub const CHALLENGE_FLAGS: u32 = 0x0000_0001
    | 0x0000_0004
    | 0x0000_0200
    | 0x0000_8000
    | 0x0001_0000
    | 0x0008_0000
    | 0x0080_0000
    | 0x0200_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x8000_0000;

/// Which NTLM message a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Negotiate,
    Authenticate,
}

/// The message type of an NTLM blob, if it is one (`NTLMSSP\0`, then type 1 or 3).
pub fn message_type(blob: &[u8]) -> Option<Message> {
    let (signature, rest) = blob.split_first_chunk::<8>()?;
    let kind = u32::from_le_bytes(*rest.first_chunk::<4>()?);
    match (signature == SIGNATURE, kind) {
        (true, 1) => Some(Message::Negotiate),
        (true, 3) => Some(Message::Authenticate),
        _ => None,
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A CHALLENGE_MESSAGE from `domain` (NetBIOS name) and `computer`, with this 8-byte server
/// challenge and `filetime` (100 ns since 1601) as its timestamp.
pub fn challenge(domain: &str, computer: &str, server_challenge: [u8; 8], filetime: u64) -> Vec<u8> {
    let target = utf16(domain);
    let mut info = Vec::new();
    let mut pair = |id: u16, value: &[u8]| {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(value.len() as u16).to_le_bytes());
        info.extend_from_slice(value);
    };
    pair(2, &target); // MsvAvNbDomainName
    pair(1, &utf16(computer)); // MsvAvNbComputerName
    pair(4, &utf16(&domain.to_ascii_lowercase())); // MsvAvDnsDomainName
    pair(3, &utf16(&computer.to_ascii_lowercase())); // MsvAvDnsComputerName
    pair(7, &filetime.to_le_bytes()); // MsvAvTimestamp
    pair(0, &[]); // MsvAvEOL
    const HEADER: usize = 56;
    let mut m = Vec::with_capacity(HEADER.saturating_add(target.len()).saturating_add(info.len()));
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    let field = |m: &mut Vec<u8>, len: usize, offset: usize| {
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
    };
    field(&mut m, target.len(), HEADER);
    m.extend_from_slice(&CHALLENGE_FLAGS.to_le_bytes());
    m.extend_from_slice(&server_challenge);
    m.extend_from_slice(&[0; 8]);
    field(&mut m, info.len(), HEADER.saturating_add(target.len()));
    // Version: 10.0 build 20348 (Windows Server 2022), NTLM revision 15.
    m.extend_from_slice(&[10, 0, 0x4C, 0x4F, 0, 0, 0, 15]);
    m.extend_from_slice(&target);
    m.extend_from_slice(&info);
    m
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn challenges_read_back_and_only_ntlm_blobs_are_recognized() {
        let m = challenge("CONTOSO", "SUMSTORM-MP", [1, 2, 3, 4, 5, 6, 7, 8], 133_000_000_000_000_000);
        assert_eq!(&m[..8], SIGNATURE);
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 2);
        let (len, off) = (
            u16::from_le_bytes([m[12], m[13]]) as usize,
            u32::from_le_bytes(m[16..20].try_into().unwrap()) as usize,
        );
        assert_eq!(&m[off..off + len], utf16("CONTOSO"));
        assert_eq!(&m[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (len, off) = (
            u16::from_le_bytes([m[40], m[41]]) as usize,
            u32::from_le_bytes(m[44..48].try_into().unwrap()) as usize,
        );
        assert_eq!(off + len, m.len());
        assert_eq!(&m[m.len() - 4..], &[0, 0, 0, 0], "the pairs end with MsvAvEOL");
        let mut negotiate = SIGNATURE.to_vec();
        negotiate.extend_from_slice(&1u32.to_le_bytes());
        assert_eq!(message_type(&negotiate), Some(Message::Negotiate));
        negotiate[8] = 3;
        assert_eq!(message_type(&negotiate), Some(Message::Authenticate));
        assert_eq!(message_type(&m), None, "a challenge is not a client's message");
        assert_eq!(message_type(b"NTLMSSP"), None);
        assert_eq!(message_type(b"garbage and more garbage"), None);
    }
}
