//! The reference Report reader: a plain quick-xml event loop feeding the same assembler as
//! [`super::scan()`]. It is the oracle the fast path is tested and fuzzed against, and a second
//! opinion anyone can read in a minute. It owns copies of the values it hands on, so it is not
//! for the hot path.

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::assemble::Assembler;
use super::{ReportSink, ScanError, ScanErrorKind as Kind, ScanSummary};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a UTF-8 Report with quick-xml, with the same results as [`super::scan()`].
pub fn read<'a, S: ReportSink<'a>>(input: &'a [u8], sink: &mut S) -> Result<ScanSummary, ScanError> {
    // quick-xml drops a leading BOM without counting it; offsets here are into `input`.
    let bom = if input.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    let mut reader = Reader::from_reader(input);
    let mut asm = Assembler::new(sink);
    loop {
        let at = reader.buffer_position() as usize + bom;
        let event = reader.read_event().map_err(|e| {
            let kind = match e {
                quick_xml::Error::Encoding(_) => Kind::Utf8,
                quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::MismatchedEndTag {
                    ..
                }) => Kind::MismatchedEnd,
                quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::UnmatchedEndTag(_)) => {
                    Kind::UnmatchedEnd
                }
                _ => Kind::Unclosed,
            };
            ScanError::new(kind, reader.error_position() as usize + bom)
        })?;
        match event {
            Event::Start(start) => {
                open(&mut asm, &start, at)?;
            }
            Event::Empty(start) => {
                open(&mut asm, &start, at)?;
                asm.end();
            }
            Event::End(_) => asm.end(),
            Event::Text(text) => {
                let text = text.into_inner();
                if asm.depth() == 0 {
                    if !text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
                        return Err(ScanError::new(Kind::OutsideRoot, at));
                    }
                } else if asm.current().reads_text() {
                    asm.text(text);
                }
            }
            Event::GeneralRef(r) => {
                if asm.depth() == 0 {
                    return Err(ScanError::new(Kind::OutsideRoot, at));
                }
                if asm.current().reads_text() {
                    let bad = || ScanError::new(Kind::Reference, at);
                    let piece = match r.resolve_char_ref().map_err(|_| bad())? {
                        Some(c) => Cow::Owned(c.to_string()),
                        None => Cow::Borrowed(resolve_predefined_entity(&r).ok_or_else(bad)?),
                    };
                    asm.text(piece);
                }
            }
            Event::CData(data) => {
                if asm.depth() == 0 {
                    return Err(ScanError::new(Kind::OutsideRoot, at));
                }
                if asm.current().reads_text() {
                    asm.text(data.into_inner());
                }
            }
            Event::DocType(_) => return Err(ScanError::new(Kind::Doctype, at)),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    asm.finish(input.len())
}

fn open<'a, S: ReportSink<'a>>(
    asm: &mut Assembler<'a, '_, S>,
    start: &BytesStart<'_>,
    at: usize,
) -> Result<(), ScanError> {
    let ctx = asm.start(start.name().as_ref().as_bytes(), at)?;
    if ctx.reads_attributes() {
        for attr in start.attributes() {
            let attr = attr.map_err(|e| {
                let kind = match e {
                    quick_xml::events::attributes::AttrError::Duplicated(..) => Kind::DuplicateAttribute,
                    _ => Kind::Attribute,
                };
                ScanError::new(kind, at)
            })?;
            if let Some(slot) = ctx.slot(attr.key.as_ref().as_bytes()) {
                let value = attr
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|_| ScanError::new(Kind::Reference, at))?;
                asm.attr(slot, Cow::Owned(value.into_owned()));
            }
        }
    }
    Ok(())
}
