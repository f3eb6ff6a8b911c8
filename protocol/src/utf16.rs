//! The one UTF-16 edge: CCM messages travel as UTF-16LE; everything past this module is UTF-8.

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE};

/// Why bytes are not UTF-16 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Utf16Error {
    #[error("UTF-16 text has an odd number of bytes ({0})")]
    OddLength(usize),
    #[error("invalid UTF-16 (a lone surrogate) at byte {0}")]
    Invalid(usize),
}

/// Decodes UTF-16 to UTF-8. A leading BOM selects the byte order and is dropped; without one the
/// text is little-endian, as every CCM sender writes it. Lone surrogates are an error, never
/// replaced: a state message must not change silently on its way in.
pub fn decode(bytes: &[u8]) -> Result<String, Utf16Error> {
    let (encoding, skip): (&'static Encoding, usize) = match bytes {
        [0xFF, 0xFE, ..] => (UTF_16LE, 2),
        [0xFE, 0xFF, ..] => (UTF_16BE, 2),
        _ => (UTF_16LE, 0),
    };
    let src = &bytes[skip..];
    if !src.len().is_multiple_of(2) {
        return Err(Utf16Error::OddLength(bytes.len()));
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity =
        decoder.max_utf8_buffer_length_without_replacement(src.len()).unwrap_or(src.len() * 3 / 2 + 16);
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(src, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(out),
        DecoderResult::Malformed(bad, extra) => {
            Err(Utf16Error::Invalid(skip + read - usize::from(bad) - usize::from(extra)))
        }
        // The buffer was sized for the worst case; treat the impossible as bad input, not a panic.
        DecoderResult::OutputFull => Err(Utf16Error::Invalid(skip + read)),
    }
}

/// Appends `s` as UTF-16LE, with a BOM first when `bom` is set.
pub fn encode_into(s: &str, bom: bool, out: &mut Vec<u8>) {
    out.reserve(s.len() * 2 + 2);
    if bom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // ASCII, the whole of most CCM XML, widens without decoding: eight bytes at a time in a
        // word, then byte by byte up to the next other character.
        while let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if word & 0x8080_8080_8080_8080 != 0 {
                break;
            }
            let mut wide = [0u8; 16];
            wide[..8].copy_from_slice(&widen4(word as u32).to_le_bytes());
            wide[8..].copy_from_slice(&widen4((word >> 32) as u32).to_le_bytes());
            out.extend_from_slice(&wide);
            i += 8;
        }
        while let Some(&b) = bytes.get(i)
            && b.is_ascii()
        {
            out.extend_from_slice(&[b, 0]);
            i += 1;
        }
        if let Some(c) = s[i..].chars().next() {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.extend_from_slice(&u.to_le_bytes());
            }
            i += c.len_utf8();
        }
    }
}

/// Four bytes `b0 b1 b2 b3` (little-endian) as `b0 0 b1 0 b2 0 b3 0`.
fn widen4(four: u32) -> u64 {
    let x = u64::from(four);
    let x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    (x | (x << 8)) & 0x00FF_00FF_00FF_00FF
}

/// `s` as UTF-16LE, optionally with a BOM.
pub fn encode(s: &str, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(s, bom, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bom_is_optional_and_dropped() {
        assert_eq!(decode(&[0xFF, 0xFE, b'<', 0, b'a', 0]).unwrap(), "<a");
        assert_eq!(decode(&[b'<', 0, b'a', 0]).unwrap(), "<a");
        assert_eq!(decode(&[0xFE, 0xFF, 0, b'<', 0, b'a']).unwrap(), "<a");
        assert_eq!(decode(&[]).unwrap(), "");
    }

    #[test]
    fn odd_and_lone_surrogates_are_errors() {
        assert_eq!(decode(&[b'a', 0, b'b']), Err(Utf16Error::OddLength(3)));
        // a, lone high surrogate D800, b
        assert_eq!(decode(&[b'a', 0, 0x00, 0xD8, b'b', 0]), Err(Utf16Error::Invalid(2)));
        // lone low surrogate DC00 after a BOM
        assert_eq!(decode(&[0xFF, 0xFE, 0x00, 0xDC]), Err(Utf16Error::Invalid(2)));
        // high surrogate at the very end
        assert_eq!(decode(&[b'a', 0, 0x3D, 0xD8]), Err(Utf16Error::Invalid(2)));
    }

    #[test]
    fn non_ascii_round_trips() {
        let s = "Zoë 😀 — ü";
        assert_eq!(decode(&encode(s, true)).unwrap(), s);
        let want: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(encode(s, false), want);
    }

    proptest! {
        #[test]
        fn round_trip(s in any::<String>(), bom: bool) {
            prop_assert_eq!(decode(&encode(&s, bom)).unwrap(), s);
        }

        /// Long ASCII runs (the widening's 16-byte steps) broken by other characters at every
        /// offset: the same units as the standard library's encoder.
        #[test]
        fn ascii_runs_widen_as_the_standard_encoder_does(s in "([ -~]{0,40}[^\\x00-\\x7F]?){0,8}") {
            let want: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
            prop_assert_eq!(encode(&s, false), want);
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(s) = decode(&b) {
                // Whatever decodes re-encodes to the same units (BOM aside).
                let body = match b.as_slice() { [0xFF, 0xFE, rest @ ..] => rest, [0xFE, 0xFF, ..] => return Ok(()), r => r };
                prop_assert_eq!(encode(&s, false), body.to_vec());
            }
        }
    }
}
