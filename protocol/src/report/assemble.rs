//! The stage both Report readers feed: document rules and field parsing, written once.

use std::borrow::Cow;

use super::{
    Invalid, Params, ReportHeader, ReportSink, ScanError, ScanErrorKind, ScanSummary, StateMessage,
};
use crate::cimtime::Timestamp;
use crate::guid::Guid;
use crate::statenames;

/// Elements may nest this deep; a Report needs 5.
pub const MAX_DEPTH: usize = 32;

/// Where an element sits in a Report, as far as the Report's fields are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    Outside,
    Report,
    Header,
    Identification,
    Machine,
    ClientId,
    NetBios,
    ClientVersion,
    Priority,
    Body,
    StateMessage,
    Topic,
    State,
    UserParameters,
    Param,
    Other,
}

impl Ctx {
    fn child(self, name: &[u8]) -> Ctx {
        match (self, name) {
            (Ctx::Outside, b"Report") => Ctx::Report,
            (Ctx::Report, b"ReportHeader") => Ctx::Header,
            (Ctx::Report, b"ReportBody") => Ctx::Body,
            (Ctx::Header, b"Identification") => Ctx::Identification,
            (Ctx::Identification, b"Machine") => Ctx::Machine,
            (Ctx::Machine, b"ClientID") => Ctx::ClientId,
            (Ctx::Machine, b"NetBIOSName") => Ctx::NetBios,
            (Ctx::Machine, b"ClientVersion") => Ctx::ClientVersion,
            (Ctx::Machine, b"Priority") => Ctx::Priority,
            (Ctx::Body, b"StateMessage") => Ctx::StateMessage,
            (Ctx::StateMessage, b"Topic") => Ctx::Topic,
            (Ctx::StateMessage, b"State") => Ctx::State,
            (Ctx::StateMessage, b"UserParameters") => Ctx::UserParameters,
            (Ctx::UserParameters, b"Param") => Ctx::Param,
            _ => Ctx::Other,
        }
    }

    /// Elements whose attributes are read (and so must be well-formed, without duplicates).
    pub(crate) fn reads_attributes(self) -> bool {
        matches!(self, Ctx::StateMessage | Ctx::Topic | Ctx::State)
    }

    /// Elements whose text is read (and so must hold only valid references).
    pub(crate) fn reads_text(self) -> bool {
        matches!(
            self,
            Ctx::ClientId | Ctx::NetBios | Ctx::ClientVersion | Ctx::Priority | Ctx::Param
        )
    }

    /// The field an attribute of this element fills, if any.
    pub(crate) fn slot(self, key: &[u8]) -> Option<Slot> {
        match (self, key) {
            (Ctx::StateMessage, b"MessageTime") => Some(Slot::Time),
            (Ctx::StateMessage, b"SerialNumber") => Some(Slot::Serial),
            (Ctx::Topic, b"ID") => Some(Slot::TopicId),
            (Ctx::Topic, b"Type") => Some(Slot::TopicType),
            (Ctx::Topic, b"IDType") => Some(Slot::IdType),
            (Ctx::State, b"ID") => Some(Slot::StateId),
            (Ctx::State, b"Criticality") => Some(Slot::Criticality),
            _ => None,
        }
    }
}

/// A record field carried by an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Time,
    Serial,
    TopicId,
    TopicType,
    IdType,
    StateId,
    Criticality,
}

type Text<'a> = Option<Cow<'a, str>>;

/// Joins a text piece onto what an element already holds; borrowing survives the common case of
/// a single piece.
fn join<'a>(existing: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if existing.is_empty() {
        *existing = piece;
    } else {
        existing.to_mut().push_str(&piece);
    }
}

fn append<'a>(field: &mut Text<'a>, piece: Cow<'a, str>) {
    match field {
        Some(existing) => join(existing, piece),
        None => *field = Some(piece),
    }
}

#[derive(Default)]
struct RawHeader<'a> {
    client_id: Text<'a>,
    netbios: Text<'a>,
    version: Text<'a>,
    priority: Text<'a>,
}

#[derive(Default)]
struct RawRecord<'a> {
    offset: usize,
    time: Text<'a>,
    serial: Text<'a>,
    has_topic: bool,
    topic_id: Text<'a>,
    topic_type: Text<'a>,
    id_type: Text<'a>,
    has_state: bool,
    state: Text<'a>,
    criticality: Text<'a>,
    params: Params<'a>,
    /// Params seen, including any past [`super::MAX_PARAMS`].
    param_count: usize,
}

/// A decimal number, surrounding ASCII whitespace allowed, no sign.
#[inline]
fn number<T: TryFrom<u64>>(text: &Text<'_>) -> Option<T> {
    let digits = text.as_deref()?.as_bytes().trim_ascii();
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    T::try_from(v).ok()
}

impl<'a> RawRecord<'a> {
    /// Turns raw field text into a record; the first bad field in document order names the
    /// problem.
    fn build(&mut self) -> StateMessage<'a> {
        let mut invalid = None;
        let mut flag = |why: Invalid| {
            invalid.get_or_insert(why);
        };
        let time = match self
            .time
            .as_deref()
            .map(|t| Timestamp::parse_cim(t.trim().as_bytes()))
        {
            Some(Ok(t)) => t,
            _ => {
                flag(Invalid::BadTime);
                Timestamp::default()
            }
        };
        let serial = number(&self.serial).unwrap_or_else(|| {
            flag(Invalid::BadSerial);
            0
        });
        let (mut topic_id, mut topic_type, mut id_type) = (Guid::default(), 0, 0);
        if !self.has_topic {
            flag(Invalid::MissingTopic);
        } else {
            match self
                .topic_id
                .as_deref()
                .map(|t| Guid::parse(t.trim().as_bytes()))
            {
                Some(Ok(g)) => topic_id = g,
                _ => flag(Invalid::BadTopicId),
            }
            match number(&self.topic_type) {
                Some(t) if statenames::is_known_topic_type(t) => topic_type = t,
                Some(t) => {
                    topic_type = t;
                    flag(Invalid::UnknownTopicType);
                }
                None => flag(Invalid::BadTopicType),
            }
            if self.id_type.is_some() {
                match number(&self.id_type) {
                    Some(t) => id_type = t,
                    None => flag(Invalid::BadIdType),
                }
            }
        }
        let (mut state, mut criticality) = (0, 0);
        if !self.has_state {
            flag(Invalid::MissingState);
        } else {
            match number::<u32>(&self.state) {
                Some(s) => {
                    state = s;
                    if statenames::max_state(topic_type).is_some_and(|max| s > max) {
                        flag(Invalid::StateOutOfRange);
                    }
                }
                None => flag(Invalid::BadState),
            }
            if self.criticality.is_some() {
                match number(&self.criticality) {
                    Some(c) => criticality = c,
                    None => flag(Invalid::BadCriticality),
                }
            }
        }
        if self.param_count > super::MAX_PARAMS {
            flag(Invalid::TooManyParams);
        }
        StateMessage {
            offset: self.offset,
            time,
            serial,
            topic_id,
            topic_type,
            id_type,
            state,
            criticality,
            params: std::mem::take(&mut self.params),
            invalid,
        }
    }
}

/// Document rules and record assembly, driven by a tokenizer.
pub(crate) struct Assembler<'a, 's, S> {
    sink: &'s mut S,
    /// The context of every open element; `depth` of them are live.
    stack: [Ctx; MAX_DEPTH],
    depth: usize,
    root_seen: bool,
    header: RawHeader<'a>,
    header_sent: bool,
    record: RawRecord<'a>,
    summary: ScanSummary,
}

impl<'a, 's, S: ReportSink<'a>> Assembler<'a, 's, S> {
    pub(crate) fn new(sink: &'s mut S) -> Self {
        Assembler {
            sink,
            stack: [Ctx::Outside; MAX_DEPTH],
            depth: 0,
            root_seen: false,
            header: RawHeader::default(),
            header_sent: false,
            record: RawRecord::default(),
            summary: ScanSummary::default(),
        }
    }

    /// The context text and attributes currently belong to.
    #[inline]
    pub(crate) fn current(&self) -> Ctx {
        if self.depth == 0 {
            Ctx::Outside
        } else {
            self.stack[self.depth - 1]
        }
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// An element opens at byte `offset`.
    #[inline]
    pub(crate) fn start(&mut self, name: &[u8], offset: usize) -> Result<Ctx, ScanError> {
        if self.depth == 0 {
            if self.root_seen {
                return Err(ScanError::new(ScanErrorKind::SecondRoot, offset));
            }
            if name != b"Report" {
                return Err(ScanError::new(ScanErrorKind::NotAReport, offset));
            }
            self.root_seen = true;
        }
        if self.depth == MAX_DEPTH {
            return Err(ScanError::new(ScanErrorKind::TooDeep, offset));
        }
        let ctx = self.current().child(name);
        self.stack[self.depth] = ctx;
        self.depth += 1;
        let empty = || Some(Cow::Borrowed(""));
        match ctx {
            Ctx::StateMessage => {
                self.record = RawRecord {
                    offset,
                    ..RawRecord::default()
                };
            }
            Ctx::Topic => {
                let r = &mut self.record;
                r.has_topic = true;
                (r.topic_id, r.topic_type, r.id_type) = (None, None, None);
            }
            Ctx::State => {
                let r = &mut self.record;
                r.has_state = true;
                (r.state, r.criticality) = (None, None);
            }
            Ctx::Param => {
                self.record.param_count += 1;
                self.record.params.push(Cow::Borrowed(""));
            }
            Ctx::Body => self.send_header(),
            Ctx::ClientId => self.header.client_id = empty(),
            Ctx::NetBios => self.header.netbios = empty(),
            Ctx::ClientVersion => self.header.version = empty(),
            Ctx::Priority => self.header.priority = empty(),
            _ => {}
        }
        Ok(ctx)
    }

    /// The open element closes (the tokenizer has matched its name).
    #[inline]
    pub(crate) fn end(&mut self) {
        let ctx = self.current();
        self.depth -= 1;
        match ctx {
            Ctx::StateMessage => {
                let message = self.record.build();
                self.summary.records += 1;
                self.summary.invalid += u64::from(message.invalid.is_some());
                self.sink.on_state_message(&message);
            }
            Ctx::Header => self.send_header(),
            _ => {}
        }
    }

    /// An attribute of the element just opened, for a slot [`Ctx::slot`] named.
    #[inline]
    pub(crate) fn attr(&mut self, slot: Slot, value: Cow<'a, str>) {
        let r = &mut self.record;
        let field = match slot {
            Slot::Time => &mut r.time,
            Slot::Serial => &mut r.serial,
            Slot::TopicId => &mut r.topic_id,
            Slot::TopicType => &mut r.topic_type,
            Slot::IdType => &mut r.id_type,
            Slot::StateId => &mut r.state,
            Slot::Criticality => &mut r.criticality,
        };
        *field = Some(value);
    }

    /// A piece of text (unescaped) directly inside the current element, when it
    /// [`Ctx::reads_text`]. Pieces split by comments, CDATA or child elements are joined.
    #[inline]
    pub(crate) fn text(&mut self, piece: Cow<'a, str>) {
        let field = match self.current() {
            Ctx::ClientId => &mut self.header.client_id,
            Ctx::NetBios => &mut self.header.netbios,
            Ctx::ClientVersion => &mut self.header.version,
            Ctx::Priority => &mut self.header.priority,
            Ctx::Param => {
                let r = &mut self.record;
                // Text of a Param past the fifth is not kept (the record is invalid anyway).
                if r.param_count <= super::MAX_PARAMS {
                    if let Some(last) = r.params.last_mut() {
                        join(last, piece);
                    }
                }
                return;
            }
            _ => return,
        };
        append(field, piece);
    }

    fn send_header(&mut self) {
        if self.header_sent {
            return;
        }
        self.header_sent = true;
        let h = std::mem::take(&mut self.header);
        let header = ReportHeader {
            client: h
                .client_id
                .as_deref()
                .and_then(|s| Guid::parse_sms_id(s).ok()),
            client_id_text: h.client_id,
            netbios_name: h.netbios,
            client_version: h.version,
            priority: number(&h.priority),
        };
        self.sink.on_header(&header);
    }

    /// The input ended at byte `len`.
    pub(crate) fn finish(mut self, len: usize) -> Result<ScanSummary, ScanError> {
        if self.depth > 0 {
            return Err(ScanError::new(ScanErrorKind::Truncated, len));
        }
        if !self.root_seen {
            return Err(ScanError::new(ScanErrorKind::Empty, len));
        }
        self.send_header();
        Ok(self.summary)
    }
}
