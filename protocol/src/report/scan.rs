//! The fast Report reader: memchr over the bytes, tags and attributes found in one pass, values
//! borrowed from the input. It tokenizes exactly as quick-xml 0.42 does (which
//! [`super::reference`] uses), so the two agree on every input: the common shapes take a one-pass
//! route, anything unusual (a quote in a name, attributes without whitespace between them, ...)
//! is re-read from the `<` by an exact mirror of quick-xml's rules.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3_iter, memmem};
use quick_xml::escape::unescape;

use super::assemble::{Assembler, Ctx, MAX_DEPTH, Slot};
use super::{ReportSink, ScanError, ScanErrorKind as Kind, ScanSummary};

/// Attributes an element may have on the one-pass route; more go the exact route.
const FAST_ATTRS: usize = 12;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Byte classes for the one-pass route: whitespace, and the bytes that end a name or key.
const WS: u8 = 1;
const STOP: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let ws = [b' ', b'\t', b'\r', b'\n'];
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] = WS | STOP;
        i += 1;
    }
    let stops = [b'>', b'/', b'"', b'\'', b'='];
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = STOP;
        i += 1;
    }
    t
};

#[inline(always)]
fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Flags the bytes of `x` below `n` (n <= 128). Only the lowest flag is exact, which is the one
/// used: the first such byte, in little-endian order.
#[inline(always)]
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO * u64::from(n)) & !x & HI
}

/// Flags the zero bytes of `x` (lowest flag exact).
#[inline(always)]
fn zeros(x: u64) -> u64 {
    below(x, 1)
}

#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes)
}

/// The first byte of the `STOP` class at or after `i`, or `b.len()`. Eight bytes at a time: every
/// stop byte is below 0x40, and name bytes mostly are not.
#[inline(always)]
fn skip_name(b: &[u8], mut i: usize) -> usize {
    while let Some(x) = word(b, i) {
        let m = below(x, 0x40);
        if m == 0 {
            i += 8;
            continue;
        }
        let k = i + (m.trailing_zeros() / 8) as usize;
        if CLASS[b[k] as usize] & STOP != 0 {
            return k;
        }
        i = k + 1;
    }
    while i < b.len() && CLASS[b[i] as usize] & STOP == 0 {
        i += 1;
    }
    i
}

/// The closing `quote` of an attribute value starting at `from`, and whether a `&` comes before
/// it (the value then needs unescaping).
#[inline(always)]
fn value_end(b: &[u8], mut i: usize, quote: u8) -> Option<(usize, bool)> {
    let mut amp = false;
    while let Some(x) = word(b, i) {
        let q = zeros(x ^ (LO * u64::from(quote)));
        let a = zeros(x ^ (LO * u64::from(b'&')));
        if q != 0 {
            let tq = q.trailing_zeros();
            amp |= a != 0 && a.trailing_zeros() < tq;
            return Some((i + (tq / 8) as usize, amp));
        }
        amp |= a != 0;
        i += 8;
    }
    while i < b.len() {
        match b[i] {
            c if c == quote => return Some((i, amp)),
            b'&' => amp = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Byte equality for short names without a call into `memcmp`: two overlapping words cover
/// names of 8 to 16 bytes.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Whether `s` holds a reference to resolve.
#[inline(always)]
fn has_amp(s: &[u8]) -> bool {
    if s.len() <= 32 { s.contains(&b'&') } else { memchr(b'&', s).is_some() }
}

/// Scans a UTF-8 Report, pushing the header and every record into `sink`.
pub fn scan<'a, S: ReportSink<'a>>(input: &'a [u8], sink: &mut S) -> Result<ScanSummary, ScanError> {
    let text = std::str::from_utf8(input).map_err(|e| ScanError::new(Kind::Utf8, e.valid_up_to()))?;
    scan_str(text, sink)
}

/// [`scan`] of text already known to be UTF-8 (the MP's decoded request body), without checking
/// its encoding a second time.
pub fn scan_str<'a, S: ReportSink<'a>>(text: &'a str, sink: &mut S) -> Result<ScanSummary, ScanError> {
    let mut scanner = Scanner { s: text, b: text.as_bytes(), names: [Name::default(); MAX_DEPTH] };
    scanner.run(Assembler::new(sink))
}

/// An open element's name, by position in the input.
#[derive(Clone, Copy, Default)]
struct Name {
    start: usize,
    end: usize,
    /// The name holds a quote, which changes where quick-xml finds its end tag's `>`.
    quoted: bool,
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    /// Names of the open elements, parallel to the assembler's context stack.
    names: [Name; MAX_DEPTH],
}

impl<'a> Scanner<'a> {
    fn run<S: ReportSink<'a>>(&mut self, mut asm: Assembler<'a, '_, S>) -> Result<ScanSummary, ScanError> {
        let b = self.b;
        let mut pos = if b.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
        loop {
            let next =
                if b.get(pos) == Some(&b'<') { Some(pos) } else { memchr(b'<', &b[pos..]).map(|i| pos + i) };
            let Some(lt) = next else {
                self.text(&mut asm, pos, b.len())?;
                break;
            };
            if lt > pos {
                self.text(&mut asm, pos, lt)?;
            }
            pos = match b.get(lt + 1) {
                None => return Err(ScanError::new(Kind::Unclosed, lt)),
                Some(b'/') => self.end_tag(&mut asm, lt)?,
                Some(b'!') => self.bang(&mut asm, lt)?,
                Some(b'?') => pi(b, lt)?,
                Some(_) => self.start_tag(&mut asm, lt)?,
            };
        }
        asm.finish(b.len())
    }

    /// Text in `from..to`: checked outside the root, read where a field wants it, and otherwise
    /// only checked for unclosed references (quick-xml rejects those anywhere).
    #[inline]
    fn text<S: ReportSink<'a>>(
        &self,
        asm: &mut Assembler<'a, '_, S>,
        from: usize,
        to: usize,
    ) -> Result<(), ScanError> {
        let text = &self.s[from..to];
        if asm.depth() == 0 {
            return match text.bytes().position(|c| !is_ws(c)) {
                None => Ok(()),
                Some(i) => Err(ScanError::new(Kind::OutsideRoot, from + i)),
            };
        }
        if asm.current().reads_text() {
            let value = if has_amp(text.as_bytes()) {
                unescape(text).map_err(|_| ScanError::new(Kind::Reference, from))?
            } else {
                Cow::Borrowed(text)
            };
            asm.text(value);
        } else {
            check_references(text.as_bytes(), from)?;
        }
        Ok(())
    }

    fn end_tag<S: ReportSink<'a>>(
        &self,
        asm: &mut Assembler<'a, '_, S>,
        lt: usize,
    ) -> Result<usize, ScanError> {
        let b = self.b;
        let depth = asm.depth();
        if depth == 0 {
            return Err(ScanError::new(Kind::UnmatchedEnd, lt));
        }
        let open = self.names[depth - 1];
        let name = &b[open.start..open.end];
        let after = lt + 2 + name.len();
        // One pass: `</name>` exactly.
        if !open.quoted && b.get(after) == Some(&b'>') && same(&b[lt + 2..after], name) {
            asm.end();
            return Ok(after + 1);
        }
        // Exact: the `>` outside quotes, trailing whitespace trimmed from the name.
        let gt = tag_end(b, lt + 1).ok_or(ScanError::new(Kind::Unclosed, lt))?;
        let content = &b[lt + 2..gt];
        let found = &content[..content.iter().rposition(|&c| !is_ws(c)).map_or(0, |p| p + 1)];
        if found != name {
            return Err(ScanError::new(Kind::MismatchedEnd, lt));
        }
        asm.end();
        Ok(gt + 1)
    }

    /// `<!--…-->`, `<![CDATA[…]]>`; a DOCTYPE or anything else after `<!` is refused.
    fn bang<S: ReportSink<'a>>(&self, asm: &mut Assembler<'a, '_, S>, lt: usize) -> Result<usize, ScanError> {
        let b = self.b;
        match b.get(lt + 2) {
            Some(b'-') if b.get(lt + 3) == Some(&b'-') => {
                // The first `-->` whose `>` is at least 6 past the `<` (so `<!-->` is no comment).
                let end = memmem::find(&b[lt + 4..], b"-->").ok_or(ScanError::new(Kind::Unclosed, lt))?;
                Ok(lt + 4 + end + 3)
            }
            Some(b'[') if b[lt..].starts_with(b"<![CDATA[") => {
                let start = lt + 9;
                let end = memmem::find(&b[start..], b"]]>").ok_or(ScanError::new(Kind::Unclosed, lt))?;
                if asm.depth() == 0 {
                    return Err(ScanError::new(Kind::OutsideRoot, lt));
                }
                if asm.current().reads_text() {
                    asm.text(Cow::Borrowed(&self.s[start..start + end]));
                }
                Ok(start + end + 3)
            }
            Some(b'D' | b'd') => Err(ScanError::new(Kind::Doctype, lt)),
            _ => Err(ScanError::new(Kind::Markup, lt)),
        }
    }

    #[inline]
    fn start_tag<S: ReportSink<'a>>(
        &mut self,
        asm: &mut Assembler<'a, '_, S>,
        lt: usize,
    ) -> Result<usize, ScanError> {
        let b = self.b;
        let name_end = skip_name(b, lt + 1);
        // The name ends where quick-xml's does only at whitespace, `>` or `/>`.
        match b.get(name_end) {
            Some(b'>') => {}
            Some(b'/') if b.get(name_end + 1) == Some(&b'>') => {}
            Some(&c) if is_ws(c) => {}
            _ => return self.start_tag_exact(asm, lt),
        }
        let ctx = asm.start(&b[lt + 1..name_end], lt)?;
        self.names[asm.depth() - 1] = Name { start: lt + 1, end: name_end, quoted: false };
        let reads = ctx.reads_attributes();
        // Keys seen, for the duplicate check of elements whose attributes are read.
        let mut keys = [(0u32, 0u32); FAST_ATTRS];
        let mut count = 0;
        // While every key is the usual one in its usual place, keys are recognised with one
        // compare each and cannot repeat.
        let usual = ctx.usual_attributes();
        let mut in_order = true;
        let mut i = name_end;
        // One pass over `(ws+ key="value")* ws* (> | />)`, handing values over as they come; on
        // any other shape the attributes are re-read by quick-xml's rules (handing a value over
        // twice only sets its field twice).
        let (empty, gt) = loop {
            match b.get(i) {
                Some(b'>') => break (false, i),
                Some(b'/') if b.get(i + 1) == Some(&b'>') => break (true, i + 1),
                Some(&c) if is_ws(c) => {}
                _ => return self.attributes_after_bail(asm, ctx, lt, name_end),
            }
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            match b.get(i) {
                Some(b'>') => break (false, i),
                Some(b'/') if b.get(i + 1) == Some(&b'>') => break (true, i + 1),
                None | Some(b'/' | b'"' | b'\'' | b'=') => {
                    return self.attributes_after_bail(asm, ctx, lt, name_end);
                }
                Some(_) => {}
            }
            let key_start = i;
            if in_order
                && let Some(&(pattern, slot)) = usual.get(count)
                && b[i..].starts_with(pattern)
            {
                let value_start = i + pattern.len();
                let Some((value_end, amp)) = value_end(b, value_start, b'"') else {
                    return self.attributes_after_bail(asm, ctx, lt, name_end);
                };
                keys[count] = (key_start as u32, (value_start - 2) as u32);
                count += 1;
                if let Some(slot) = slot {
                    self.deliver_slot(asm, slot, (value_start, value_end), amp)?;
                }
                i = value_end + 1;
                continue;
            }
            in_order = false;
            i = skip_name(b, i);
            if b.get(i) != Some(&b'=') {
                return self.attributes_after_bail(asm, ctx, lt, name_end);
            }
            let key = &b[key_start..i];
            let quote = match b.get(i + 1) {
                Some(&q @ (b'"' | b'\'')) => q,
                _ => return self.attributes_after_bail(asm, ctx, lt, name_end),
            };
            let value_start = i + 2;
            let Some((value_end, amp)) = value_end(b, value_start, quote) else {
                return self.attributes_after_bail(asm, ctx, lt, name_end);
            };
            if reads {
                if count == FAST_ATTRS {
                    return self.attributes_after_bail(asm, ctx, lt, name_end);
                }
                if keys[..count].iter().any(|&(s, e)| same(&b[s as usize..e as usize], key)) {
                    return Err(ScanError::new(Kind::DuplicateAttribute, key_start));
                }
                keys[count] = (key_start as u32, i as u32);
                count += 1;
                self.deliver(asm, ctx, key, (value_start, value_end), amp)?;
            }
            i = value_end + 1;
        };
        if empty {
            asm.end();
        }
        Ok(gt + 1)
    }

    /// The one-pass route met a shape it leaves alone after the element was opened: find the
    /// tag's end and re-read its attributes by quick-xml's rules.
    #[cold]
    fn attributes_after_bail<S: ReportSink<'a>>(
        &mut self,
        asm: &mut Assembler<'a, '_, S>,
        ctx: Ctx,
        lt: usize,
        name_end: usize,
    ) -> Result<usize, ScanError> {
        let tag = TagBounds::find(self.b, lt)?;
        self.finish_tag_exact(asm, ctx, name_end, tag)
    }

    /// A start tag read by quick-xml's rules, for the shapes the one-pass route leaves alone.
    #[cold]
    fn start_tag_exact<S: ReportSink<'a>>(
        &mut self,
        asm: &mut Assembler<'a, '_, S>,
        lt: usize,
    ) -> Result<usize, ScanError> {
        let b = self.b;
        let tag = TagBounds::find(b, lt)?;
        let content = &b[lt + 1..tag.content_end];
        let name_len = content.iter().position(|&c| is_ws(c)).unwrap_or(content.len());
        let name = &content[..name_len];
        let ctx = asm.start(name, lt)?;
        let quoted = name.iter().any(|&c| c == b'"' || c == b'\'');
        self.names[asm.depth() - 1] = Name { start: lt + 1, end: lt + 1 + name_len, quoted };
        self.finish_tag_exact(asm, ctx, lt + 1 + name_len, tag)
    }

    /// Reads the attributes (when the element's are read) and closes an empty element.
    fn finish_tag_exact<S: ReportSink<'a>>(
        &mut self,
        asm: &mut Assembler<'a, '_, S>,
        ctx: Ctx,
        name_end: usize,
        tag: TagBounds,
    ) -> Result<usize, ScanError> {
        if ctx.reads_attributes() {
            self.attributes_exact(asm, ctx, name_end, tag.content_end)?;
        }
        if tag.empty {
            asm.end();
        }
        Ok(tag.gt + 1)
    }

    /// Attributes in `from..to` by quick-xml's rules (XML mode, with checks): whitespace
    /// optional between attributes, whitespace allowed around `=`, values quoted, keys unique.
    fn attributes_exact<S: ReportSink<'a>>(
        &self,
        asm: &mut Assembler<'a, '_, S>,
        ctx: Ctx,
        from: usize,
        to: usize,
    ) -> Result<(), ScanError> {
        let b = self.b;
        let skip_ws = |mut i: usize| {
            while i < to && is_ws(b[i]) {
                i += 1;
            }
            i
        };
        let mut keys: Vec<(usize, usize)> = Vec::new();
        let mut i = from;
        loop {
            i = skip_ws(i);
            if i == to {
                return Ok(());
            }
            // The key's first byte is taken whatever it is (even `=`), then the key runs to `=`
            // or whitespace, as in quick-xml.
            let key_start = i;
            i += 1;
            while i < to && b[i] != b'=' && !is_ws(b[i]) {
                i += 1;
            }
            let key_end = i;
            i = skip_ws(i);
            if i == to || b[i] != b'=' {
                return Err(ScanError::new(Kind::Attribute, key_start));
            }
            let key = &b[key_start..key_end];
            if keys.iter().any(|&(s, e)| &b[s..e] == key) {
                return Err(ScanError::new(Kind::DuplicateAttribute, key_start));
            }
            keys.push((key_start, key_end));
            i = skip_ws(i + 1);
            let quote = match b.get(i) {
                Some(&q @ (b'"' | b'\'')) if i < to => q,
                _ => return Err(ScanError::new(Kind::Attribute, key_start)),
            };
            let value_start = i + 1;
            let len = memchr(quote, &b[value_start..to]).ok_or(ScanError::new(Kind::Attribute, key_start))?;
            let value = (value_start, value_start + len);
            self.deliver(asm, ctx, key, value, has_amp(&b[value.0..value.1]))?;
            i = value_start + len + 1;
        }
    }

    /// Hands an attribute to the assembler when it fills a field.
    #[inline(always)]
    fn deliver<S: ReportSink<'a>>(
        &self,
        asm: &mut Assembler<'a, '_, S>,
        ctx: Ctx,
        key: &[u8],
        value: (usize, usize),
        amp: bool,
    ) -> Result<(), ScanError> {
        match ctx.slot(key) {
            Some(slot) => self.deliver_slot(asm, slot, value, amp),
            None => Ok(()),
        }
    }

    #[inline(always)]
    fn deliver_slot<S: ReportSink<'a>>(
        &self,
        asm: &mut Assembler<'a, '_, S>,
        slot: Slot,
        value: (usize, usize),
        amp: bool,
    ) -> Result<(), ScanError> {
        let raw = &self.s[value.0..value.1];
        let value = if amp { unescape_value(raw, value.0)? } else { Cow::Borrowed(raw) };
        asm.attr(slot, value);
        Ok(())
    }
}

/// Resolves the references in a value (rare: state messages carry none).
#[cold]
fn unescape_value(raw: &str, at: usize) -> Result<Cow<'_, str>, ScanError> {
    unescape(raw).map_err(|_| ScanError::new(Kind::Reference, at))
}

/// Where a start tag beginning at `<` ends, by quick-xml's rules.
#[derive(Clone, Copy)]
struct TagBounds {
    /// The closing `>`.
    gt: usize,
    /// `/>`: the element is empty.
    empty: bool,
    /// End of name and attributes (before `/>` or `>`).
    content_end: usize,
}

impl TagBounds {
    fn find(b: &[u8], lt: usize) -> Result<TagBounds, ScanError> {
        let gt = tag_end(b, lt + 1).ok_or(ScanError::new(Kind::Unclosed, lt))?;
        // `<` is never `/` here (that is an end tag), so a `/` before `>` is past the `<`.
        let empty = b[gt - 1] == b'/' && gt - 1 > lt;
        Ok(TagBounds { gt, empty, content_end: if empty { gt - 1 } else { gt } })
    }
}

/// The `>` that ends a tag begun before `from`: the first one outside single- or double-quoted
/// regions (quick-xml's `ElementParser`).
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for i in memchr3_iter(b'>', b'\'', b'"', &b[from..]) {
        let c = b[from + i];
        match (quote, c) {
            (None, b'>') => return Some(from + i),
            (None, q) => quote = Some(q),
            (Some(q), c) if q == c => quote = None,
            _ => {}
        }
    }
    None
}

/// `<?…?>`: ends at the first `?>`; `<?>` alone is not one.
fn pi(b: &[u8], lt: usize) -> Result<usize, ScanError> {
    let q = memmem::find(&b[lt + 1..], b"?>").ok_or(ScanError::new(Kind::Unclosed, lt))?;
    let gt = lt + 1 + q + 1;
    if gt - lt < 3 {
        return Err(ScanError::new(Kind::Unclosed, lt));
    }
    Ok(gt + 1)
}

/// Every `&` in text must reach a `;` before the next `&` (quick-xml reports an unclosed
/// reference otherwise, whether or not the text is read).
fn check_references(text: &[u8], at: usize) -> Result<(), ScanError> {
    let mut i = 0;
    while let Some(amp) = memchr(b'&', &text[i..]).map(|p| i + p) {
        match memchr2(b';', b'&', &text[amp + 1..]) {
            Some(k) if text[amp + 1 + k] == b';' => i = amp + 1 + k + 1,
            _ => return Err(ScanError::new(Kind::Unclosed, at + amp)),
        }
    }
    Ok(())
}
