//! The stage both Report readers feed: document rules and field parsing, written once.

use std::borrow::Cow;

use super::{Invalid, Params, ReportHeader, ReportSink, ScanError, ScanErrorKind, ScanSummary, StateMessage};
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
        matches!(self, Ctx::ClientId | Ctx::NetBios | Ctx::ClientVersion | Ctx::Priority | Ctx::Param)
    }

    /// The attributes clients write on this element, in their usual order, each as `key="` with
    /// the field it fills. The fast scanner tries these first; [`Ctx::slot`] decides the rest.
    pub(crate) fn usual_attributes(self) -> &'static [(&'static [u8], Option<Slot>)] {
        match self {
            Ctx::StateMessage => {
                &[(b"MessageTime=\"", Some(Slot::Time)), (b"SerialNumber=\"", Some(Slot::Serial))]
            }
            Ctx::Topic => &[
                (b"ID=\"", Some(Slot::TopicId)),
                (b"Type=\"", Some(Slot::TopicType)),
                (b"IDType=\"", Some(Slot::IdType)),
                (b"User=\"", None),
                (b"UserSID=\"", None),
            ],
            Ctx::State => &[(b"ID=\"", Some(Slot::StateId)), (b"Criticality=\"", Some(Slot::Criticality))],
            _ => &[],
        }
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

impl Slot {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The record being read: its fields are parsed as their attributes arrive, straight into the
/// message the sink will see, so nothing is copied or moved per record.
struct Record<'a> {
    message: StateMessage<'a>,
    /// Slots whose attribute was present.
    seen: u8,
    /// Slots whose attribute did not parse.
    bad: u8,
    has_topic: bool,
    has_state: bool,
    /// Params seen, including any past [`super::MAX_PARAMS`].
    param_count: usize,
}

impl<'a> Record<'a> {
    fn new() -> Record<'a> {
        Record {
            message: StateMessage {
                offset: 0,
                time: Timestamp::default(),
                serial: 0,
                topic_id: Guid::default(),
                topic_type: 0,
                id_type: 0,
                state: 0,
                criticality: 0,
                params: Params::new(),
                invalid: None,
            },
            seen: 0,
            bad: 0,
            has_topic: false,
            has_state: false,
            param_count: 0,
        }
    }

    fn reset(&mut self, offset: usize) {
        let m = &mut self.message;
        (m.offset, m.time, m.serial, m.topic_id) = (offset, Timestamp::default(), 0, Guid::default());
        (m.topic_type, m.id_type, m.state, m.criticality) = (0, 0, 0, 0);
        m.params.clear();
        (self.seen, self.bad, self.has_topic, self.has_state, self.param_count) = (0, 0, false, false, 0);
    }

    /// Forgets the slots of an element that appears again.
    fn clear(&mut self, slots: &[Slot]) {
        for &slot in slots {
            self.seen &= !slot.bit();
            self.bad &= !slot.bit();
            self.set(slot, "0");
        }
    }

    /// Parses `value` into `slot`; a value that does not parse leaves zero and marks the slot.
    #[inline]
    fn set(&mut self, slot: Slot, value: &str) -> bool {
        let m = &mut self.message;
        let text = value.as_bytes().trim_ascii();
        let ok = match slot {
            Slot::Time => Timestamp::parse_cim(text).map(|t| m.time = t).is_ok(),
            Slot::Serial => number(text).map(|v| m.serial = v).is_some(),
            Slot::TopicId => Guid::parse(text).map(|g| m.topic_id = g).is_ok(),
            Slot::TopicType => number(text).map(|v| m.topic_type = v).is_some(),
            Slot::IdType => number(text).map(|v| m.id_type = v).is_some(),
            Slot::StateId => number(text).map(|v| m.state = v).is_some(),
            Slot::Criticality => number(text).map(|v| m.criticality = v).is_some(),
        };
        if !ok {
            match slot {
                Slot::Time => m.time = Timestamp::default(),
                Slot::Serial => m.serial = 0,
                Slot::TopicId => m.topic_id = Guid::default(),
                Slot::TopicType => m.topic_type = 0,
                Slot::IdType => m.id_type = 0,
                Slot::StateId => m.state = 0,
                Slot::Criticality => m.criticality = 0,
            }
        }
        ok
    }

    /// Decides whether the record is usable; the first bad field in document order names the
    /// problem.
    fn judge(&mut self) {
        let ok = |slot: Slot| self.seen & slot.bit() != 0 && self.bad & slot.bit() == 0;
        let bad = |slot: Slot| self.bad & slot.bit() != 0;
        let m = &self.message;
        let max_state = statenames::max_state(m.topic_type);
        let why = if !ok(Slot::Time) {
            Some(Invalid::BadTime)
        } else if !ok(Slot::Serial) {
            Some(Invalid::BadSerial)
        } else if !self.has_topic {
            Some(Invalid::MissingTopic)
        } else if !ok(Slot::TopicId) {
            Some(Invalid::BadTopicId)
        } else if !ok(Slot::TopicType) {
            Some(Invalid::BadTopicType)
        } else if max_state.is_none() {
            Some(Invalid::UnknownTopicType)
        } else if bad(Slot::IdType) {
            Some(Invalid::BadIdType)
        } else if !self.has_state {
            Some(Invalid::MissingState)
        } else if !ok(Slot::StateId) {
            Some(Invalid::BadState)
        } else if max_state.is_some_and(|max| m.state > max) {
            Some(Invalid::StateOutOfRange)
        } else if bad(Slot::Criticality) {
            Some(Invalid::BadCriticality)
        } else if self.param_count > super::MAX_PARAMS {
            Some(Invalid::TooManyParams)
        } else {
            None
        };
        self.message.invalid = why;
    }
}

/// A decimal number (already trimmed), no sign.
#[inline]
fn number<T: TryFrom<u64>>(digits: &[u8]) -> Option<T> {
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

/// Document rules and record assembly, driven by a tokenizer.
pub(crate) struct Assembler<'a, 's, S> {
    sink: &'s mut S,
    /// The context of every open element; `depth` of them are live.
    stack: [Ctx; MAX_DEPTH],
    depth: usize,
    root_seen: bool,
    header: RawHeader<'a>,
    header_sent: bool,
    record: Record<'a>,
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
            record: Record::new(),
            summary: ScanSummary::default(),
        }
    }

    /// The context text and attributes currently belong to.
    #[inline]
    pub(crate) fn current(&self) -> Ctx {
        if self.depth == 0 { Ctx::Outside } else { self.stack[self.depth - 1] }
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
            Ctx::StateMessage => self.record.reset(offset),
            Ctx::Topic => {
                if self.record.has_topic {
                    self.record.clear(&[Slot::TopicId, Slot::TopicType, Slot::IdType]);
                }
                self.record.has_topic = true;
            }
            Ctx::State => {
                if self.record.has_state {
                    self.record.clear(&[Slot::StateId, Slot::Criticality]);
                }
                self.record.has_state = true;
            }
            Ctx::Param => {
                self.record.param_count += 1;
                self.record.message.params.push(Cow::Borrowed(""));
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
                self.record.judge();
                let message = &self.record.message;
                self.summary.records += 1;
                self.summary.invalid += u64::from(message.invalid.is_some());
                self.sink.on_state_message(message);
            }
            Ctx::Header => self.send_header(),
            _ => {}
        }
    }

    /// An attribute of the element just opened, for a slot [`Ctx::slot`] named.
    #[inline]
    pub(crate) fn attr(&mut self, slot: Slot, value: Cow<'a, str>) {
        let r = &mut self.record;
        r.seen |= slot.bit();
        if r.set(slot, &value) {
            r.bad &= !slot.bit();
        } else {
            r.bad |= slot.bit();
        }
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
                if r.param_count <= super::MAX_PARAMS
                    && let Some(last) = r.message.params.last_mut()
                {
                    join(last, piece);
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
            client: h.client_id.as_deref().and_then(|s| Guid::parse_sms_id(s).ok()),
            client_id_text: h.client_id,
            netbios_name: h.netbios,
            client_version: h.version,
            priority: h.priority.as_deref().and_then(|p| number(p.as_bytes().trim_ascii())),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast scanner's guesses name the same fields as the general rule.
    #[test]
    fn usual_attributes_agree_with_slot() {
        for ctx in [Ctx::StateMessage, Ctx::Topic, Ctx::State, Ctx::Param, Ctx::Other] {
            for &(pattern, slot) in ctx.usual_attributes() {
                let key = pattern.strip_suffix(b"=\"").expect("key=\"");
                assert_eq!(ctx.slot(key), slot, "{ctx:?} {key:?}");
            }
        }
    }
}
