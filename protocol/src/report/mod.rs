//! The state-message `Report` (flow.md §5), the hot format of the whole system.
//!
//! ```text
//!  bytes ──► scan::scan (memchr fast path) ──┐
//!                                             ├─► Assembler ──► ReportSink::on_header
//!  bytes ──► reference::read (quick-xml) ────┘   (structure,    ReportSink::on_state_message
//!                                                  fields)
//! ```
//! Both readers are tokenizers only: they hand tags, attributes and text to one `assemble`
//! stage that owns the document rules (one `Report` root, depth limit, nothing but whitespace
//! outside it) and turns raw field text into typed records. So the two readers can differ only in
//! tokenizing, which is what the differential tests and fuzz targets compare.
//!
//! A document is either **malformed** (not well-formed XML, or not a `Report`: the scan returns a
//! [`ScanError`] with kind and byte offset, and the whole file is bad) or well-formed, in which case
//! every `StateMessage` reaches the sink, each saying whether it is usable ([`Invalid`] says why
//! not). Records delivered before an error belong to a bad document: a sink that applies them must
//! wait for the scan's `Ok`.
//!
//! [`write`](mod@write) is the other direction: templated bytes for the load generator.

mod assemble;
pub mod reference;
pub mod scan;
pub mod write;

use std::borrow::Cow;
use std::fmt;

pub use assemble::MAX_DEPTH;
pub use scan::{scan, scan_str};
pub use write::{OutMessage, ReportIdentity, ReportWriter};

use crate::cimtime::Timestamp;
use crate::guid::Guid;

/// A `StateMessage` carries at most this many `Param`s.
pub const MAX_PARAMS: usize = 5;

/// The client identity from `ReportHeader/Identification/Machine`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportHeader<'a> {
    /// `ClientID` as sent (`GUID:…` or `GUID: …`), when present.
    pub client_id_text: Option<Cow<'a, str>>,
    /// The SMS ID `ClientID` holds, when it holds one. A Report without it cannot be attributed:
    /// StateSys counts all its records as invalid.
    pub client: Option<Guid>,
    pub netbios_name: Option<Cow<'a, str>>,
    pub client_version: Option<Cow<'a, str>>,
    /// `Priority`, when present and a number (5 is normal).
    pub priority: Option<u32>,
}

/// Up to [`MAX_PARAMS`] `UserParameters/Param` texts, borrowed from the document unless they
/// held references.
#[derive(Clone, PartialEq, Eq)]
pub struct Params<'a> {
    items: [Cow<'a, str>; MAX_PARAMS],
    len: u8,
}

impl<'a> Params<'a> {
    pub const fn new() -> Params<'a> {
        Params {
            items: [
                Cow::Borrowed(""),
                Cow::Borrowed(""),
                Cow::Borrowed(""),
                Cow::Borrowed(""),
                Cow::Borrowed(""),
            ],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.items[..self.len()].get(i).map(|c| c.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.items[..self.len()].iter().map(|c| c.as_ref())
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn last_mut(&mut self) -> Option<&mut Cow<'a, str>> {
        let len = self.len();
        self.items[..len].last_mut()
    }

    /// Adds a param; returns false (and keeps nothing) once [`MAX_PARAMS`] are held.
    pub fn push(&mut self, value: Cow<'a, str>) -> bool {
        if self.len() == MAX_PARAMS {
            return false;
        }
        self.items[self.len()] = value;
        self.len += 1;
        true
    }
}

impl Default for Params<'_> {
    fn default() -> Self {
        Params::new()
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One `StateMessage` record. Fields that did not parse hold zero; [`StateMessage::invalid`]
/// then says which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMessage<'a> {
    /// Byte offset of the record's `<StateMessage` in the scanned input.
    pub offset: usize,
    /// `MessageTime`: when the state changed, UTC.
    pub time: Timestamp,
    /// `SerialNumber`: rises by one per message for the life of the client.
    pub serial: u64,
    /// `Topic/@ID`: the update, UpdateSource or deployment the state is about.
    pub topic_id: Guid,
    /// `Topic/@Type`: 500 detection, 501 scan, 402 enforcement, 300-302 deployments.
    pub topic_type: u32,
    /// `Topic/@IDType` (3 for topic type 500; 0 when absent).
    pub id_type: u32,
    /// `State/@ID`.
    pub state: u32,
    /// `State/@Criticality` (0 when absent).
    pub criticality: u32,
    pub params: Params<'a>,
    /// Why the record cannot be applied, if it cannot.
    pub invalid: Option<Invalid>,
}

impl StateMessage<'_> {
    pub fn is_valid(&self) -> bool {
        self.invalid.is_none()
    }
}

/// Why a well-formed `StateMessage` is unusable. The first problem in field order is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("MessageTime is missing or not a CIM datetime")]
    BadTime,
    #[error("SerialNumber is missing or not a number")]
    BadSerial,
    #[error("the record has no Topic")]
    MissingTopic,
    #[error("Topic ID is missing or not a GUID")]
    BadTopicId,
    #[error("Topic Type is missing or not a number")]
    BadTopicType,
    #[error("Topic Type is not a software-update topic type")]
    UnknownTopicType,
    #[error("Topic IDType is not a number")]
    BadIdType,
    #[error("the record has no State")]
    MissingState,
    #[error("State ID is missing or not a number")]
    BadState,
    #[error("State ID is outside its topic type's range")]
    StateOutOfRange,
    #[error("State Criticality is not a number")]
    BadCriticality,
    #[error("more than 5 Params")]
    TooManyParams,
}

/// What a scan counted, for StateSys's `Processed N records with M invalid records.`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub records: u64,
    pub invalid: u64,
}

/// What made a document malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanErrorKind {
    /// The bytes are not UTF-8.
    Utf8,
    /// A tag, comment, CDATA section, processing instruction or reference is not closed.
    Unclosed,
    /// `<!` starts something that is not a comment, CDATA or DOCTYPE.
    Markup,
    /// DOCTYPE declarations are refused (no entity expansion, ever).
    Doctype,
    /// An end tag does not match the open element.
    MismatchedEnd,
    /// An end tag with no open element.
    UnmatchedEnd,
    /// A malformed attribute in an element whose attributes are read.
    Attribute,
    /// The same attribute twice in an element whose attributes are read.
    DuplicateAttribute,
    /// An unknown entity or bad character reference in a value that is read.
    Reference,
    /// Elements nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The root element is not `Report`.
    NotAReport,
    /// A second root element.
    SecondRoot,
    /// Something other than whitespace, comments or processing instructions outside the root.
    OutsideRoot,
    /// The input ends inside an element.
    Truncated,
    /// No root element at all.
    Empty,
}

impl ScanErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ScanErrorKind::Utf8 => "not UTF-8",
            ScanErrorKind::Unclosed => "unclosed markup",
            ScanErrorKind::Markup => "unknown <! markup",
            ScanErrorKind::Doctype => "DOCTYPE is not accepted",
            ScanErrorKind::MismatchedEnd => "end tag does not match the open element",
            ScanErrorKind::UnmatchedEnd => "end tag without an open element",
            ScanErrorKind::Attribute => "malformed attribute",
            ScanErrorKind::DuplicateAttribute => "duplicate attribute",
            ScanErrorKind::Reference => "bad entity or character reference",
            ScanErrorKind::TooDeep => "elements nest too deep",
            ScanErrorKind::NotAReport => "the root element is not Report",
            ScanErrorKind::SecondRoot => "a second root element",
            ScanErrorKind::OutsideRoot => "content outside the root element",
            ScanErrorKind::Truncated => "the document ends inside an element",
            ScanErrorKind::Empty => "no root element",
        }
    }
}

/// A malformed document: what and where (byte offset into the scanned input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Report: {} at byte {offset}", kind.describe())]
pub struct ScanError {
    pub kind: ScanErrorKind,
    pub offset: usize,
}

impl ScanError {
    pub(crate) const fn new(kind: ScanErrorKind, offset: usize) -> ScanError {
        ScanError { kind, offset }
    }
}

/// Receives what a scan finds, in document order. `on_header` comes exactly once for a
/// well-formed document, before the first record (with empty identity when the header is missing
/// or comes after the body).
pub trait ReportSink<'a> {
    fn on_header(&mut self, header: &ReportHeader<'a>);
    fn on_state_message(&mut self, message: &StateMessage<'a>);
}

/// A sink that keeps owned copies of everything: for tests, tools and the reference comparison.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collect {
    pub headers: Vec<ReportHeader<'static>>,
    pub messages: Vec<StateMessage<'static>>,
}

fn own(c: &Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    c.as_ref().map(|s| Cow::Owned(s.to_string()))
}

impl<'a> ReportSink<'a> for Collect {
    fn on_header(&mut self, h: &ReportHeader<'a>) {
        self.headers.push(ReportHeader {
            client_id_text: own(&h.client_id_text),
            client: h.client,
            netbios_name: own(&h.netbios_name),
            client_version: own(&h.client_version),
            priority: h.priority,
        });
    }

    fn on_state_message(&mut self, m: &StateMessage<'a>) {
        let mut params = Params::new();
        for p in m.params.iter() {
            params.push(Cow::Owned(p.to_owned()));
        }
        self.messages.push(StateMessage { params, ..m.clone_without_params() });
    }
}

impl StateMessage<'_> {
    fn clone_without_params(&self) -> StateMessage<'static> {
        StateMessage {
            offset: self.offset,
            time: self.time,
            serial: self.serial,
            topic_id: self.topic_id,
            topic_type: self.topic_type,
            id_type: self.id_type,
            state: self.state,
            criticality: self.criticality,
            params: Params::new(),
            invalid: self.invalid,
        }
    }
}
