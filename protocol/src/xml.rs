//! A small owned element tree for the low-rate message bodies (location, registration, policy,
//! MP list, the `Msg` header), read with quick-xml, and a matching writer. Lenient the way real
//! MPs are: children in any order, unknown elements and attributes ignored. The state-message
//! `Report`, the one hot format, has its own zero-copy scanner in [`crate::report`].

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

/// Escapes an attribute value. Beyond `escape`'s five characters, tab, line feed and carriage
/// return become character references: a reader replaces them with spaces where they stand
/// literally in an attribute (XML 1.0 §3.3.3), so they would not survive otherwise.
pub fn escape_attr(v: &str) -> std::borrow::Cow<'_, str> {
    let escaped = escape(v);
    if !escaped.contains(['\t', '\n', '\r']) {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + 8);
    for c in escaped.chars() {
        match c {
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Deeper documents are refused: no CCM body nests past a dozen levels.
pub const MAX_DEPTH: usize = 64;

/// Documents with more elements and attributes than this are refused: the largest CCM bodies
/// read into a tree (a registration with its certificates and discovery properties) hold a few
/// dozen. With it the tree costs at most the text it copies plus `MAX_NODES` small nodes, so a
/// few kilobytes of `<a/>` cannot become hundreds of megabytes.
pub const MAX_NODES: usize = 4096;

/// A document that is not well-formed XML, or not what the caller expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at byte {offset})")]
pub struct XmlError {
    pub reason: String,
    pub offset: u64,
}

impl XmlError {
    pub(crate) fn new(reason: impl Into<String>, offset: u64) -> XmlError {
        XmlError { reason: reason.into(), offset }
    }
}

/// One element: name, attributes in document order, child elements, and its own text (text,
/// references and CDATA directly inside it, concatenated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// Parses a document with exactly one root element. An XML declaration (even one saying
    /// `encoding="UTF-16"`, which describes the wire form, not this text) is skipped; a DOCTYPE
    /// is refused.
    pub fn parse(xml: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let mut nodes = 0usize;
        loop {
            let at = reader.buffer_position();
            let event =
                reader.read_event().map_err(|e| XmlError::new(e.to_string(), reader.error_position()))?;
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    if root.is_some() {
                        return Err(XmlError::new("a second root element", at));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError::new("elements nest too deep", at));
                    }
                    nodes += 1;
                    let mut element =
                        Element { name: start.name().as_ref().to_owned(), ..Element::default() };
                    for attr in start.attributes() {
                        let attr = attr.map_err(|e| XmlError::new(e.to_string(), at))?;
                        nodes += 1;
                        if nodes > MAX_NODES {
                            break;
                        }
                        let value = attr
                            .normalized_value(XmlVersion::Implicit1_0)
                            .map_err(|e| XmlError::new(e.to_string(), at))?;
                        element.attrs.push((attr.key.as_ref().to_owned(), value.into_owned()));
                    }
                    if nodes > MAX_NODES {
                        return Err(XmlError::new(
                            format!("more than {MAX_NODES} elements and attributes"),
                            at,
                        ));
                    }
                    if is_empty {
                        close(&mut stack, &mut root, element);
                    } else {
                        stack.push(element);
                    }
                }
                Event::End(_) => {
                    // quick-xml has already matched the end name against the start.
                    if let Some(element) = stack.pop() {
                        close(&mut stack, &mut root, element);
                    }
                }
                Event::Text(text) => {
                    let text = text.into_inner();
                    match stack.last_mut() {
                        Some(open) => open.text.push_str(&text),
                        None if text.trim().is_empty() => {}
                        None => return Err(XmlError::new("text outside the root element", at)),
                    }
                }
                Event::GeneralRef(r) => {
                    let Some(open) = stack.last_mut() else {
                        return Err(XmlError::new("a reference outside the root element", at));
                    };
                    match r.resolve_char_ref().map_err(|e| XmlError::new(e.to_string(), at))? {
                        Some(c) => open.text.push(c),
                        None => match resolve_predefined_entity(&r) {
                            Some(s) => open.text.push_str(s),
                            None => {
                                return Err(XmlError::new(format!("unknown entity &{};", &*r), at));
                            }
                        },
                    }
                }
                Event::CData(data) => {
                    let data = data.into_inner();
                    match stack.last_mut() {
                        Some(open) => open.text.push_str(&data),
                        None => return Err(XmlError::new("CDATA outside the root element", at)),
                    }
                }
                Event::DocType(_) => return Err(XmlError::new("DOCTYPE is not accepted", at)),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => break,
            }
        }
        if !stack.is_empty() {
            return Err(XmlError::new("the document ends inside an element", xml.len() as u64));
        }
        root.ok_or_else(|| XmlError::new("no root element", 0))
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of attribute `name`, matched without regard to case (senders write both `Ack`
    /// and `ACK`).
    pub fn attr_ci(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The text of child `name`, trimmed; `None` when the child is absent.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Requires the root to be named `name`.
    pub fn expect_root(self, name: &str) -> Result<Element, XmlError> {
        if self.name == name {
            Ok(self)
        } else {
            Err(XmlError::new(format!("expected <{name}>, found <{}>", self.name), 0))
        }
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Builds XML text with escaping, for the body writers.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter::default()
    }

    fn tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape_attr(v));
            self.out.push('"');
        }
    }

    /// `<name a="v">`
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag(name, attrs);
        self.out.push('>');
        self
    }

    /// `<name a="v"/>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Escaped text.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escape(text));
        self
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name, &[]).text(text).close(name)
    }

    /// A CDATA section; a `]]>` inside the data is split across two sections.
    pub fn cdata(&mut self, data: &str) -> &mut Self {
        self.out.push_str("<![CDATA[");
        self.out.push_str(&data.replace("]]>", "]]]]><![CDATA[>"));
        self.out.push_str("]]>");
        self
    }

    /// Markup written as is (for pre-built fragments).
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_text_cdata_and_references() {
        let e = Element::parse(
            r#"<?xml version="1.0" encoding="UTF-16"?>
<a x="1 &amp; 2"><b>t&lt;u&#x41;<![CDATA[<raw>]]></b><c/><b>second</b></a>"#,
        )
        .unwrap();
        assert_eq!(e.attr("x"), Some("1 & 2"));
        assert_eq!(e.child_text("b"), Some("t<uA<raw>"));
        assert_eq!(e.children_named("b").count(), 2);
        assert!(e.child("c").is_some());
        assert_eq!(e.attr_ci("X"), Some("1 & 2"));
    }

    #[test]
    fn refuses_what_is_not_one_well_formed_element() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text<a/>",
            "<a>&bogus;</a>",
            "<!DOCTYPE a><a/>",
            "<a x=1/>",
            "<a x='1' x='2'/>",
        ] {
            assert!(Element::parse(bad).is_err(), "{bad:?}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(Element::parse(&deep).is_err());
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(Element::parse(&ok).is_ok());
        // Wide rather than deep: elements and attributes are counted together.
        let wide = |n: usize| format!("<r>{}</r>", "<a/>".repeat(n));
        assert!(Element::parse(&wide(MAX_NODES - 1)).is_ok());
        assert!(Element::parse(&wide(MAX_NODES)).is_err());
        let attrs: String = (0..MAX_NODES).map(|i| format!(" a{i}=''")).collect();
        assert!(Element::parse(&format!("<r{attrs}/>")).is_err());
    }

    #[test]
    fn writer_escapes_and_reads_back() {
        let mut w = XmlWriter::new();
        w.open("r", &[("q", "a\"<&>'")])
            .leaf("t", "x < y & z")
            .open("l", &[])
            .cdata("http://<mp>/x]]>y")
            .close("l")
            .close("r");
        let xml = w.finish();
        let e = Element::parse(&xml).unwrap();
        assert_eq!(e.attr("q"), Some("a\"<&>'"));
        assert_eq!(e.child_text("t"), Some("x < y & z"));
        assert_eq!(e.child_text("l"), Some("http://<mp>/x]]>y"));
    }
}
