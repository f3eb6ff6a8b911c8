//! `multipart/mixed` as CCM senders write it (RFC 2046, lenient about bare LF line ends and
//! header case).

use memchr::memmem;

use super::EnvelopeError;

/// Parts beyond this many are refused (a CCM message has two).
pub const MAX_PARTS: usize = 8;
/// A part's header block is at most this long.
pub const MAX_PART_HEADERS: usize = 8 * 1024;

/// One body part, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The part's `content-type` value, if it has one.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

impl Part<'_> {
    /// Whether the content type is `application/octet-stream`.
    pub fn is_octet_stream(&self) -> bool {
        self.content_type.is_some_and(|ct| media_type(ct).eq_ignore_ascii_case("application/octet-stream"))
    }
}

/// The media type of a content-type value, without parameters.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// The boundary of a `multipart/mixed` content type, quoted or not.
pub fn boundary(content_type: &str) -> Result<&str, EnvelopeError> {
    if !media_type(content_type).eq_ignore_ascii_case("multipart/mixed") {
        return Err(EnvelopeError::NotMultipart);
    }
    for param in content_type.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else { continue };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if value.is_empty() || value.len() > 70 {
                return Err(EnvelopeError::Multipart("the boundary must be 1 to 70 characters"));
            }
            return Ok(value);
        }
    }
    Err(EnvelopeError::Multipart("no boundary in the content type"))
}

/// Splits `body` at `--boundary` delimiters. Each part must be followed by a delimiter; the
/// closing `--boundary--` may be missing after the last one.
pub fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, EnvelopeError> {
    let dash = format!("--{boundary}");
    let dash = dash.as_bytes();
    let finder = memmem::Finder::new(dash);
    // The first delimiter: at the start, or after a preamble line.
    let mut at = finder
        .find_iter(body)
        .find(|&p| p == 0 || body[p - 1] == b'\n')
        .ok_or(EnvelopeError::Multipart("no boundary delimiter in the body"))?;
    let mut parts = Vec::new();
    loop {
        let after = at + dash.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        // Transport padding, then the line end.
        let mut line = after;
        while matches!(body.get(line), Some(b' ' | b'\t')) {
            line += 1;
        }
        let headers_start = match &body[line..] {
            [b'\r', b'\n', ..] => line + 2,
            [b'\n', ..] => line + 1,
            [] => break,
            _ => return Err(EnvelopeError::Multipart("text after a boundary delimiter")),
        };
        let (headers, content_start) = split_headers(&body[headers_start..])?;
        let content_start = headers_start + content_start;
        // The part ends at the next delimiter, which starts a line.
        let next = finder
            .find_iter(&body[content_start..])
            .map(|p| content_start + p)
            .find(|&p| body[p - 1] == b'\n' || p == content_start)
            .ok_or(EnvelopeError::Multipart("a part is not followed by a boundary delimiter"))?;
        let mut end = next;
        if end > content_start && body[end - 1] == b'\n' {
            end -= 1;
            if end > content_start && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if parts.len() == MAX_PARTS {
            return Err(EnvelopeError::Multipart("too many parts"));
        }
        parts.push(Part { content_type: content_type(headers)?, body: &body[content_start..end] });
        at = next;
    }
    Ok(parts)
}

/// Splits a part at the blank line: (header block, offset of the content).
fn split_headers(part: &[u8]) -> Result<(&[u8], usize), EnvelopeError> {
    if let Some(rest) = part.strip_prefix(b"\r\n") {
        return Ok((&[], part.len() - rest.len()));
    }
    if part.starts_with(b"\n") {
        return Ok((&[], 1));
    }
    let window = &part[..part.len().min(MAX_PART_HEADERS + 4)];
    // The blank line that comes first, CRLF or bare LF.
    let crlf = memmem::find(window, b"\r\n\r\n").map(|p| (p, p + 4));
    let lf = memmem::find(window, b"\n\n").map(|p| (p, p + 2));
    if let Some((end, content)) = [crlf, lf].into_iter().flatten().min() {
        return Ok((&part[..end], content));
    }
    if part.len() > MAX_PART_HEADERS {
        Err(EnvelopeError::Multipart("part headers too long"))
    } else {
        Err(EnvelopeError::Multipart("part headers are not ended by a blank line"))
    }
}

fn content_type(headers: &[u8]) -> Result<Option<&str>, EnvelopeError> {
    let headers =
        std::str::from_utf8(headers).map_err(|_| EnvelopeError::Multipart("part headers are not ASCII"))?;
    Ok(headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-type").then(|| value.trim())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = r#"multipart/mixed; boundary="aAbBcCdDv1234567890VxXyYzZ""#;

    #[test]
    fn boundary_quoted_or_not() {
        assert_eq!(boundary(CT).unwrap(), "aAbBcCdDv1234567890VxXyYzZ");
        assert_eq!(boundary("Multipart/Mixed;boundary=abc").unwrap(), "abc");
        assert!(matches!(boundary("text/xml"), Err(EnvelopeError::NotMultipart)));
        assert!(boundary("multipart/mixed").is_err());
        assert!(boundary("multipart/mixed; boundary=\"\"").is_err());
    }

    #[test]
    fn splits_parts_with_any_header_case_and_line_ends() {
        let body = b"preamble\r\n--B\r\nContent-Type: text/plain\r\nX-Other: 1\r\n\r\none\r\n--B\ncontent-type: application/octet-stream\n\ntwo\r\n\r\n--B--\r\nepilogue";
        let parts = split(body, "B").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, Some("text/plain"));
        assert_eq!(parts[0].body, b"one");
        assert!(parts[1].is_octet_stream());
        assert_eq!(parts[1].body, b"two\r\n");
    }

    #[test]
    fn wrong_or_missing_delimiters_are_errors() {
        assert!(split(b"--X\r\n\r\nbody\r\n--X--", "B").is_err());
        assert!(split(b"--B\r\n\r\nbody never ends", "B").is_err());
        assert!(split(b"--B\r\ncontent-type: a", "B").is_err());
        // A delimiter that does not start a line is content.
        let parts = split(b"--B\r\n\r\nx--B y\r\n--B--", "B").unwrap();
        assert_eq!(parts[0].body, b"x--B y");
        let many = "--B\r\n\r\nx\r\n".repeat(MAX_PARTS + 1) + "--B--";
        assert!(split(many.as_bytes(), "B").is_err());
    }
}
