//! The CCM message envelope (wire.md §1-4): a `multipart/mixed` body whose first part is the
//! UTF-16LE `Msg` header and whose second is the message body, zlib-compressed UTF-16LE (or raw
//! UTF-16LE), ending in a NUL character.
//!
//! - [`decode_request`]: what the MP does with a `CCM_POST` body: boundary from the content type,
//!   header parsed, body inflated (bounded) and transcoded to UTF-8 once;
//!   [`decode_request_charged`] first asks a memory budget for what decoding may allocate.
//! - [`build_request`]: the faithful request form, for the load generator.
//! - [`build_sync_reply`] / [`NO_REPLY`]: the MP's two reply shapes; [`decode_reply`] reads them the
//!   way Python clients do.

mod header;
pub mod multipart;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub use header::{BodyRange, Hook, MsgHeader};

use crate::utf16::{self, Utf16Error};
use crate::xml::XmlError;

/// The boundary every known CCM sender uses.
pub const BOUNDARY: &str = "aAbBcCdDv1234567890VxXyYzZ";
/// The request and reply `Content-Type`.
pub const CONTENT_TYPE: &str = "multipart/mixed; boundary=\"aAbBcCdDv1234567890VxXyYzZ\"";

/// Why a body is not a CCM message. Each says in one line what is wrong, for a 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the content type is not multipart/mixed")]
    NotMultipart,
    #[error("bad multipart body: {0}")]
    Multipart(&'static str),
    #[error("a CCM message has a header part and a body part; found {0} part(s)")]
    MissingPart(usize),
    #[error("the Msg header is not UTF-16: {0}")]
    HeaderText(Utf16Error),
    #[error("the Msg header is not valid: {0}")]
    Header(XmlError),
    #[error("the body is not UTF-16: {0}")]
    BodyText(Utf16Error),
    #[error("the body is not valid zlib data: {0}")]
    Zlib(String),
    #[error("the body inflates past the limit of {0} bytes")]
    TooLarge(usize),
    #[error("no memory is free for decoding {0} bytes; retry later")]
    OverBudget(usize),
}

/// Bounds for decoding untrusted bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a body may inflate to (UTF-16). Zip bombs stop here.
    pub max_inflated: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_inflated: 16 * 1024 * 1024 }
    }
}

/// A decoded `CCM_POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub header: MsgHeader,
    /// The body XML as UTF-8, without BOM, trailing NUL or line end.
    pub body: String,
    /// Whether the body came zlib-compressed.
    pub compressed: bool,
    /// Where in the HTTP body the payload a `PayloadSignature` covers is: the zlib stream as
    /// sent, or the declared `Body Length` bytes of an uncompressed body
    /// ([`crate::signing`]). Empty for requests that did not come in an envelope.
    pub payload: std::ops::Range<usize>,
}

/// How far past its declared `Body Length` a compressed body may inflate (senders add a NUL and
/// a line end; some count differently).
pub const INFLATE_SLACK: usize = 64 * 1024;

/// Decodes a `CCM_POST` body sent with `content_type`.
pub fn decode_request(content_type: &str, body: &[u8], limits: &Limits) -> Result<Request, EnvelopeError> {
    decode_request_charged(content_type, body, limits, |_, _| true)
}

/// [`decode_request`], asking `charge` first for the most bytes decoding can allocate (the
/// inflated UTF-16 body and its UTF-8 text), known once the header is read and before the body
/// is touched: a compressed body is bounded by its declared `Body Length` plus
/// [`INFLATE_SLACK`] (never past `limits.max_inflated`) and refused past that. When `charge`
/// says no, nothing is decoded: [`EnvelopeError::OverBudget`].
pub fn decode_request_charged(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
    charge: impl FnOnce(&MsgHeader, usize) -> bool,
) -> Result<Request, EnvelopeError> {
    let boundary = multipart::boundary(content_type)?;
    let parts = multipart::split(body, boundary)?;
    let [head, payload, ..] = parts.as_slice() else {
        return Err(EnvelopeError::MissingPart(parts.len()));
    };
    let header = decode_header(head.body)?;
    // Compression is announced by the hook; senders that forget it still send zlib's 0x78 header
    // in an octet-stream part.
    let compressed = header.is_compressed() || (payload.is_octet_stream() && looks_like_zlib(payload.body));
    // The body is `Length` bytes at `Offset` of the payload; attachments (a DDR's first report)
    // come before it.
    let offset = header.body.as_ref().map_or(0, |b| usize::try_from(b.offset).unwrap_or(usize::MAX));
    let declared = header
        .body
        .as_ref()
        .map(|b| usize::try_from(b.length).unwrap_or(usize::MAX))
        .filter(|&n| n > 0)
        .map(|n| n.saturating_add(offset));
    let utf16_bound = if compressed {
        declared.map_or(limits.max_inflated, |n| n.saturating_add(INFLATE_SLACK).min(limits.max_inflated))
    } else {
        payload.body.len()
    };
    // UTF-8 takes at most 3 bytes per UTF-16 code unit of 2.
    let total = utf16_bound.saturating_add(utf16_bound / 2 * 3);
    if !charge(&header, total) {
        return Err(EnvelopeError::OverBudget(total));
    }
    // As a real MP, what the header declares is the body: a byte past it (an odd trailing byte
    // some senders add) is not read.
    let declared_part = |all: usize| {
        let end = declared.filter(|&n| n <= all).unwrap_or(all);
        offset.min(end)..end
    };
    let utf16_body = if compressed {
        let hint = declared.map_or(0, |n| n.saturating_add(2));
        let mut all = inflate(payload.body, hint, utf16_bound)?;
        let part = declared_part(all.len());
        all.truncate(part.end);
        all.drain(..part.start);
        all
    } else {
        payload.body[declared_part(payload.body.len())].to_vec()
    };
    // The part is a slice of `body`: its place there, by address.
    let start = (payload.body.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    let signed = if compressed { payload.body.len() } else { utf16_body.len() };
    let payload = start..start.saturating_add(signed);
    Ok(Request { header, body: body_text(&utf16_body)?, compressed, payload })
}

fn decode_header(part: &[u8]) -> Result<MsgHeader, EnvelopeError> {
    let text = utf16::decode(strip_line_end(part)).map_err(EnvelopeError::HeaderText)?;
    MsgHeader::parse(text.trim_end_matches(['\0', '\r', '\n', ' '])).map_err(EnvelopeError::Header)
}

fn strip_line_end(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r\n").unwrap_or(b)
}

/// UTF-16 body bytes (with the sender's trailing NUL and CRLF) to UTF-8 text.
fn body_text(utf16_body: &[u8]) -> Result<String, EnvelopeError> {
    let text = utf16::decode(strip_line_end(utf16_body)).map_err(EnvelopeError::BodyText)?;
    let end = text.trim_end_matches(['\0', '\r', '\n']).len();
    let mut text = text;
    text.truncate(end);
    Ok(text)
}

/// RFC 1950: deflate method, a 32K window at most, and a header checksum.
fn looks_like_zlib(b: &[u8]) -> bool {
    matches!(b, [cmf, flg, ..] if cmf & 0x0F == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

/// Inflates a zlib stream, refusing to grow past `limit` bytes. Bytes after the stream's end
/// (the sender's CRLF) are ignored.
pub fn inflate(data: &[u8], size_hint: usize, limit: usize) -> Result<Vec<u8>, EnvelopeError> {
    let mut d = Decompress::new(true);
    let mut out = Vec::with_capacity(size_hint.clamp(256, limit.max(256)));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(EnvelopeError::TooLarge(limit));
            }
            out.reserve((out.len()).clamp(4096, limit - out.len()));
        }
        let consumed = d.total_in() as usize;
        let produced = d.total_out();
        let status = d
            .decompress_vec(&data[consumed..], &mut out, FlushDecompress::Finish)
            .map_err(|e| EnvelopeError::Zlib(e.to_string()))?;
        if out.len() > limit {
            return Err(EnvelopeError::TooLarge(limit));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => {
                let stuck = d.total_in() as usize == consumed && d.total_out() == produced;
                if stuck && out.len() < out.capacity() {
                    return Err(EnvelopeError::Zlib("the stream ends early".into()));
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's deflate state and its level: reset between streams rather than allocated
    /// (and its pages zeroed) for every request.
    static DEFLATE: std::cell::RefCell<Option<(u32, Compress)>> = const { std::cell::RefCell::new(None) };
}

/// zlib-compresses `data` at `level` (0-9).
pub fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    DEFLATE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            let c = match kept.as_mut() {
                Some((l, c)) if *l == level => {
                    c.reset();
                    c
                }
                _ => &mut kept.insert((level, Compress::new(Compression::new(level), true))).1,
            };
            deflate_with(c, data)
        }
        // Only if compressing from inside compressing: a state of its own.
        Err(_) => deflate_with(&mut Compress::new(Compression::new(level), true), data),
    })
}

fn deflate_with(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.len().max(256));
        }
        let consumed = c.total_in() as usize;
        match c.compress_vec(&data[consumed..], &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return out,
            Ok(_) => {}
            // Compressing into a growing buffer cannot fail; keep the loop honest anyway.
            Err(_) => return out,
        }
    }
}

fn push_part_head(out: &mut Vec<u8>, content_type: &str) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

fn push_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(BOUNDARY.as_bytes());
    out.extend_from_slice(b"--");
}

/// Builds a `CCM_POST` body the way clients do: header part (UTF-16LE with BOM), then the body
/// as UTF-16LE + NUL, zlib-compressed at `zlib_level` (with the line end inside the stream) or
/// raw when `None`. Sets the header's `Body` length and compression hook to match.
pub fn build_request(header: &mut MsgHeader, body_xml: &str, zlib_level: Option<u32>) -> Vec<u8> {
    build_signed_request(header, body_xml, zlib_level, |_| None)
}

/// [`build_request`], and `sign` sees the payload as it will be sent (the bytes a
/// `PayloadSignature` covers) and may return a hook (`clientauth`) to add to the header.
pub fn build_signed_request(
    header: &mut MsgHeader,
    body_xml: &str,
    zlib_level: Option<u32>,
    sign: impl FnOnce(&[u8]) -> Option<Hook>,
) -> Vec<u8> {
    let mut body = utf16::encode(body_xml, false);
    body.extend_from_slice(&[0, 0]);
    header.body = Some(BodyRange { kind: "ByteRange".into(), offset: 0, length: body.len() as u64 });
    header.set_compressed(zlib_level.is_some());
    let payload = match zlib_level {
        Some(level) => {
            body.extend_from_slice(b"\r\n");
            deflate(&body, level)
        }
        None => body,
    };
    if let Some(hook) = sign(&payload) {
        header.hooks.retain(|h| !h.name.eq_ignore_ascii_case(&hook.name));
        header.hooks.insert(0, hook);
    }
    let head = utf16::encode(&header.to_xml(), true);
    let mut out = Vec::with_capacity(head.len() + payload.len() + 256);
    push_part_head(&mut out, "text/plain; charset=UTF-16");
    out.extend_from_slice(&head);
    out.extend_from_slice(b"\r\n");
    if zlib_level.is_some() {
        push_part_head(&mut out, "application/octet-stream");
        out.extend_from_slice(&payload);
    } else {
        push_part_head(&mut out, "text/plain; charset=UTF-16");
        out.extend_from_slice(&payload);
        out.extend_from_slice(b"\r\n");
    }
    push_close(&mut out);
    out
}

/// Builds the two-part sync reply: the header (UTF-16LE with BOM), then zlib of the reply XML as
/// UTF-16LE **with BOM and a trailing NUL** (Python clients drop the last character before
/// parsing). Sets the header's `Body` length and compression hook to match.
pub fn build_sync_reply(header: &mut MsgHeader, reply_xml: &str) -> Vec<u8> {
    let mut body = utf16::encode(reply_xml, true);
    body.extend_from_slice(&[0, 0]);
    header.body = Some(BodyRange { kind: "ByteRange".into(), offset: 0, length: body.len() as u64 });
    header.set_compressed(true);
    let head = utf16::encode(&header.to_xml(), true);
    let mut out = Vec::with_capacity(head.len() + body.len() / 2 + 256);
    push_part_head(&mut out, "text/plain; charset=UTF-16");
    out.extend_from_slice(&head);
    out.extend_from_slice(b"\r\n");
    push_part_head(&mut out, "application/octet-stream");
    out.extend_from_slice(&deflate(&body, 6));
    push_close(&mut out);
    out
}

/// The reply to an async message (relay): one MIME chunk saying `NoReply` (UTF-16LE with BOM).
pub const NO_REPLY: &[u8] = b"--aAbBcCdDv1234567890VxXyYzZ\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n\xFF\xFEN\0o\0R\0e\0p\0l\0y\0\r\n--aAbBcCdDv1234567890VxXyYzZ--";

/// What an MP answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A sync reply: header and body XML (UTF-8, trailing NUL dropped).
    Sync { header: Box<MsgHeader>, body: String },
    /// The async acknowledgement.
    NoReply,
    /// HTTP 200 with an empty body: the MP could not handle the message.
    Empty,
}

/// Reads an MP's reply as Python clients do: the `application/octet-stream` part inflated,
/// decoded as UTF-16 (BOM honoured), last character (the NUL) dropped.
pub fn decode_reply(content_type: &str, body: &[u8], limits: &Limits) -> Result<Reply, EnvelopeError> {
    if body.is_empty() {
        return Ok(Reply::Empty);
    }
    let parts = multipart::split(body, multipart::boundary(content_type)?)?;
    let Some(payload) = parts.iter().find(|p| p.is_octet_stream()) else {
        let said_no_reply = parts.first().and_then(|p| utf16::decode(p.body).ok());
        return match said_no_reply.as_deref().map(|s| s.trim_end_matches('\0').trim()) {
            Some("NoReply") => Ok(Reply::NoReply),
            _ => Err(EnvelopeError::MissingPart(parts.len())),
        };
    };
    let header = match parts.first() {
        Some(p) if !p.is_octet_stream() => decode_header(p.body)?,
        _ => MsgHeader::default(),
    };
    let inflated = inflate(payload.body, 0, limits.max_inflated)?;
    let mut text = utf16::decode(&inflated).map_err(EnvelopeError::BodyText)?;
    if text.ends_with('\0') {
        text.pop();
    }
    Ok(Reply::Sync { header: Box::new(header), body: text })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's deflate state, reset between streams and across levels, gives every stream
    /// as a fresh one would: the same bytes, which inflate back.
    #[test]
    fn a_reused_deflate_state_compresses_like_a_fresh_one() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8).collect();
        let fresh = |level| deflate_with(&mut Compress::new(Compression::new(level), true), &data);
        for level in [1, 6, 1, 0, 9, 1] {
            let reused = deflate(&data, level);
            assert_eq!(reused, fresh(level), "level {level}");
            assert_eq!(inflate(&reused, data.len(), data.len()).unwrap(), data);
        }
    }

    #[test]
    fn zlib_sniffing() {
        assert!(looks_like_zlib(&deflate(b"x", 6)));
        assert!(looks_like_zlib(&deflate(b"x", 1)));
        assert!(!looks_like_zlib(b"<\0M\0"));
        assert!(!looks_like_zlib(b"\xFF\xFE"));
    }

    #[test]
    fn inflate_is_bounded() {
        let bomb = deflate(&vec![0u8; 10_000_000], 9);
        assert!(bomb.len() < 20_000);
        assert_eq!(inflate(&bomb, 0, 1_000_000), Err(EnvelopeError::TooLarge(1_000_000)));
        assert_eq!(inflate(&bomb, 0, 10_000_000).unwrap().len(), 10_000_000);
        let small = deflate(b"hello", 6);
        assert_eq!(inflate(&small, 0, 5).unwrap(), b"hello");
        assert!(inflate(&small[..small.len() - 3], 0, 100).is_err());
        assert!(inflate(b"\x78\x9c garbage", 0, 100).is_err());
        assert!(inflate(b"", 0, 100).is_err());
    }

    /// A DDR as clients send it: an attachment (an earlier copy of the record) and then the
    /// body, in one zlib stream; the header's `Body` says where the body is.
    #[test]
    fn the_body_is_read_at_its_declared_offset() {
        let part = |xml: &str| {
            let mut b = crate::utf16::encode(xml, false);
            b.extend_from_slice(b"\0\0\r\n");
            b
        };
        let (attachment, body) = (part("<Report>first</Report>"), part("<Report>second</Report>"));
        let header = format!(
            "<Msg SchemaVersion=\"1.1\"><Attachment Length=\"{}\" Name=\"a\" Offset=\"0\"/><Body Type=\"ByteRange\" \
             Length=\"{}\" Offset=\"{}\"/><Hooks><Hook3 Name=\"zlib-compress\"/></Hooks><ID>{{00000000-0000-0000-0000-000000000001}}</ID>\
             <Payload Type=\"inline\"/><ReplyMode>ASync</ReplyMode><ReplyTo>direct:PC:SccmMessaging</ReplyTo>\
             <SourceID>GUID:257EC4DF-C376-43A9-BAD1-D4AA25B48A2C</SourceID><TargetEndpoint>MP_DdrEndpoint</TargetEndpoint></Msg>",
            attachment.len() - 4,
            body.len() - 2,
            attachment.len()
        );
        for compressed in [true, false] {
            let mut payload = [attachment.as_slice(), body.as_slice()].concat();
            let header = if compressed {
                header.clone()
            } else {
                header.replace("<Hook3 Name=\"zlib-compress\"/>", "")
            };
            if compressed {
                payload = deflate(&payload, 6);
            }
            let mut out = Vec::new();
            push_part_head(&mut out, "text/plain; charset=UTF-16");
            out.extend_from_slice(&crate::utf16::encode(&header, true));
            out.extend_from_slice(b"\r\n");
            push_part_head(&mut out, "application/octet-stream");
            out.extend_from_slice(&payload);
            push_close(&mut out);
            let r = decode_request(CONTENT_TYPE, &out, &Limits::default()).unwrap();
            assert_eq!(r.body, "<Report>second</Report>", "compressed: {compressed}");
            assert_eq!(r.header.target_endpoint, "MP_DdrEndpoint");
        }
    }

    #[test]
    fn no_reply_reads_back() {
        assert_eq!(decode_reply(CONTENT_TYPE, NO_REPLY, &Limits::default()), Ok(Reply::NoReply));
        assert_eq!(decode_reply(CONTENT_TYPE, b"", &Limits::default()), Ok(Reply::Empty));
    }
}
