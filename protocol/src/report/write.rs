//! Writes Reports as the client does, from templates: no DOM, no formatting machinery, one
//! reusable buffer. This is what the load generator sends.

use quick_xml::escape::escape;

use crate::cimtime::Timestamp;
use crate::guid::{Guid, GuidStyle};

/// Who is reporting: the `ReportHeader/Identification/Machine` values.
#[derive(Debug, Clone, Copy)]
pub struct ReportIdentity<'a> {
    pub client: Guid,
    pub netbios_name: &'a str,
    pub client_version: &'a str,
    /// 5 is normal; StateSys files higher and lower priorities into `high/` and `low/`.
    pub priority: u32,
}

/// A `Param` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    /// What software-update messages carry: the update revision (500) or content version (501).
    Number(u64),
    Text(&'a str),
}

/// One state message to write.
#[derive(Debug, Clone, Copy)]
pub struct OutMessage<'a> {
    pub time: Timestamp,
    pub serial: u64,
    pub topic_id: Guid,
    /// Updates are written lower case, the UpdateSource braced upper case, as clients do.
    pub topic_style: GuidStyle,
    pub topic_type: u32,
    pub id_type: u32,
    pub state: u32,
    pub criticality: u32,
    /// At most [`super::MAX_PARAMS`] are meaningful; more are written as given.
    pub params: &'a [Param<'a>],
}

/// Builds one Report at a time in a reused buffer.
#[derive(Debug, Default)]
pub struct ReportWriter {
    buf: Vec<u8>,
    /// The last MessageTime written and its CIM text: a scan's messages share one time, and
    /// formatting it is a good part of writing a message.
    last_time: Option<(Timestamp, [u8; 25])>,
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

fn push_text(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(escape(text).as_bytes());
}

fn push_cim(buf: &mut Vec<u8>, t: Timestamp) {
    let mut cim = [0u8; 25];
    t.encode_cim(&mut cim);
    buf.extend_from_slice(&cim);
}

impl ReportWriter {
    pub fn new() -> ReportWriter {
        ReportWriter::default()
    }

    /// A writer with room for about `bytes` of Report, so writing one does not grow (and copy)
    /// its buffer step by step.
    pub fn with_capacity(bytes: usize) -> ReportWriter {
        ReportWriter { buf: Vec::with_capacity(bytes), last_time: None }
    }

    /// Starts a Report (dropping any previous one): declaration, header with `date` as the
    /// report date, and the opening of the body.
    pub fn begin(&mut self, id: &ReportIdentity<'_>, date: Timestamp) {
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(
            b"<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<Report><ReportHeader><Identification><Machine>\
<ClientInstalled>1</ClientInstalled><ClientType>1</ClientType><ClientID>GUID:",
        );
        id.client.push_to(GuidStyle::Upper, b);
        b.extend_from_slice(b"</ClientID><ClientVersion>");
        push_text(b, id.client_version);
        b.extend_from_slice(b"</ClientVersion><NetBIOSName>");
        push_text(b, id.netbios_name);
        b.extend_from_slice(
            b"</NetBIOSName><CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID><Priority>",
        );
        push_u64(b, u64::from(id.priority));
        b.extend_from_slice(
            b"</Priority></Machine></Identification><ReportDetails><ReportContent>State Message Data</ReportContent>\
<ReportType>Full</ReportType><Date>",
        );
        push_cim(b, date);
        b.extend_from_slice(
            b"</Date><Version>1.0</Version><Format>1.0</Format></ReportDetails></ReportHeader><ReportBody>",
        );
    }

    /// Appends one `StateMessage`.
    #[inline]
    pub fn push(&mut self, m: &OutMessage<'_>) {
        let b = &mut self.buf;
        b.extend_from_slice(b"<StateMessage MessageTime=\"");
        match self.last_time {
            Some((t, cim)) if t == m.time => b.extend_from_slice(&cim),
            _ => {
                let mut cim = [0u8; 25];
                m.time.encode_cim(&mut cim);
                b.extend_from_slice(&cim);
                self.last_time = Some((m.time, cim));
            }
        }
        b.extend_from_slice(b"\" SerialNumber=\"");
        push_u64(b, m.serial);
        b.extend_from_slice(b"\"><Topic ID=\"");
        m.topic_id.push_to(m.topic_style, b);
        b.extend_from_slice(b"\" Type=\"");
        push_u64(b, u64::from(m.topic_type));
        b.extend_from_slice(b"\" IDType=\"");
        push_u64(b, u64::from(m.id_type));
        b.extend_from_slice(b"\" User=\"\" UserSID=\"\"/><State ID=\"");
        push_u64(b, u64::from(m.state));
        b.extend_from_slice(b"\" Criticality=\"");
        push_u64(b, u64::from(m.criticality));
        b.extend_from_slice(b"\"/>");
        if !m.params.is_empty() {
            b.extend_from_slice(b"<UserParameters Flags=\"0\" Count=\"");
            push_u64(b, m.params.len() as u64);
            b.extend_from_slice(b"\">");
            for p in m.params {
                b.extend_from_slice(b"<Param>");
                match p {
                    Param::Number(n) => push_u64(b, *n),
                    Param::Text(t) => push_text(b, t),
                }
                b.extend_from_slice(b"</Param>");
            }
            b.extend_from_slice(b"</UserParameters>");
        }
        b.extend_from_slice(b"</StateMessage>");
    }

    /// Closes the Report and returns its bytes (UTF-8; the envelope transcodes to UTF-16).
    pub fn finish(&mut self) -> &[u8] {
        self.buf.extend_from_slice(b"</ReportBody></Report>");
        &self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Closes the Report and hands over its text without copying it. Everything written is
    /// UTF-8 (templates, numbers, and escaped `&str`s), so this never loses a byte.
    pub fn into_string(mut self) -> String {
        self.finish();
        String::from_utf8(self.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}
