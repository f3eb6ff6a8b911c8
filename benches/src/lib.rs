//! Shared inputs and baselines for the criterion benches (`cargo bench -p benches`).
//!
//! - [`sample_report`]: a deterministic bulk Report like a client's after a Patch Tuesday scan.
//! - [`relay_report`]: 150 update messages from a given client, what the relay load tools post.
//! - [`quick_xml_loop`]: the baseline the fast scanner is measured against, a plain quick-xml
//!   event loop extracting the same fields (no assembler, no checks beyond quick-xml's own).

use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp, statenames};
use quick_xml::Reader;
use quick_xml::events::Event;

/// The Report the relay load tools post: 150 TopicType 500 messages from `client`, written into
/// `w` (reused across calls).
pub fn relay_report(client: Guid, w: &mut ReportWriter) -> String {
    relay_report_for(client, w, |i| Guid(0x505fda07_b4f3_45fb_83d9_8642554e0000 + i as u128))
}

/// [`relay_report`] with message `i` about `update(i)`.
pub fn relay_report_for(client: Guid, w: &mut ReportWriter, update: impl Fn(usize) -> Guid) -> String {
    let t0 = Timestamp::parse_cim(b"20140120171842.120000+000").unwrap_or_default();
    w.begin(
        &ReportIdentity { client, netbios_name: "LOADPC", client_version: "5.00.7958.1000", priority: 5 },
        t0,
    );
    for i in 0..RELAY_MESSAGES {
        w.push(&OutMessage {
            time: Timestamp(t0.0 + i as i64 * 1000),
            serial: 230 + i as u64,
            topic_id: update(i),
            topic_style: GuidStyle::Lower,
            topic_type: statenames::TOPIC_UPDATE_DETECTION,
            id_type: 3,
            state: 1 + (i as u32 % 3),
            criticality: 0,
            params: &[Param::Number(200)],
        });
    }
    String::from_utf8_lossy(w.finish()).into_owned()
}

/// State messages in a [`relay_report`].
pub const RELAY_MESSAGES: usize = 150;

/// A Report of `messages` state messages: one 501 scan message, then 500 messages for
/// consecutive updates with mixed states, as one reporting cycle carries them. The updates are
/// not in the default site's catalog (StateSys counts them as unknown and stores no state for
/// them); [`catalog_report`] names the catalog's.
pub fn sample_report(messages: usize) -> Vec<u8> {
    report_for(messages, |i| Guid(0x505fda07_b4f3_45fb_83d9_8642554e0000 + i as u128))
}

/// [`sample_report`] about the default site's updates (the first `messages - 1` of its
/// catalog, round again past its end), so that every record is stored.
pub fn catalog_report(messages: usize) -> Vec<u8> {
    let site = backend::site::Site::default_site();
    let ids: Vec<Guid> = site.catalog.updates().iter().map(|u| u.id).collect();
    report_for(messages, |i| ids[(i - 1) % ids.len()])
}

fn report_for(messages: usize, update: impl Fn(usize) -> Guid) -> Vec<u8> {
    let mut w = ReportWriter::new();
    let t0 = Timestamp::parse_cim(b"20140120171842.120000+000").expect("valid");
    w.begin(
        &ReportIdentity {
            client: Guid(0xA1006D0E_CF56_41D1_A006_6330EFC39381),
            netbios_name: "PS1WIN7X64",
            client_version: "5.00.7958.1000",
            priority: 5,
        },
        t0,
    );
    for i in 0..messages {
        let scan = i == 0;
        let params = [Param::Number(if scan { 38 } else { 100 + i as u64 })];
        w.push(&OutMessage {
            time: Timestamp(t0.0 + i as i64 * 1_000),
            serial: 230 + i as u64,
            topic_id: if scan { Guid(0xC2D17964_BBDD_4339_B9F3_12D7205B39CC) } else { update(i) },
            topic_style: if scan { GuidStyle::UpperBraced } else { GuidStyle::Lower },
            topic_type: if scan { statenames::TOPIC_SCAN } else { statenames::TOPIC_UPDATE_DETECTION },
            id_type: 3,
            state: if scan { 2 } else { 1 + (i as u32 % 3) },
            criticality: 0,
            params: &params,
        });
    }
    w.finish().to_vec()
}

/// What a Report scan extracts, folded so the optimizer must compute every field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    pub records: u64,
    pub checksum: u128,
}

impl Fold {
    fn add(
        &mut self,
        time: Timestamp,
        serial: u64,
        topic: Guid,
        topic_type: u32,
        state: u32,
        param_len: usize,
    ) {
        self.records += 1;
        self.checksum = self
            .checksum
            .wrapping_mul(31)
            .wrapping_add(topic.0 ^ time.0 as u128 ^ u128::from(serial) ^ u128::from(topic_type << 8 | state))
            .wrapping_add(param_len as u128);
    }
}

impl<'a> protocol::report::ReportSink<'a> for Fold {
    fn on_header(&mut self, h: &protocol::report::ReportHeader<'a>) {
        self.checksum ^= h.client.map_or(0, |g| g.0);
    }

    fn on_state_message(&mut self, m: &protocol::report::StateMessage<'a>) {
        let param_len = m.params.get(0).map_or(0, str::len);
        self.add(m.time, m.serial, m.topic_id, m.topic_type, m.state, param_len);
    }
}

/// A plain quick-xml event loop extracting the same fields as the scanner (client ID, and per
/// record time, serial, topic, type, state and first param), parsed with the same helpers.
pub fn quick_xml_loop(input: &[u8]) -> Fold {
    let mut fold = Fold::default();
    let mut reader = Reader::from_reader(input);
    let (mut time, mut serial, mut topic, mut topic_type, mut state, mut param_len) =
        (Timestamp::default(), 0u64, Guid::default(), 0u32, 0u32, 0usize);
    let mut in_client_id = false;
    let mut in_param = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => match e.name().as_ref() {
                "StateMessage" => {
                    for a in e.attributes().flatten() {
                        match a.key.as_ref() {
                            "MessageTime" => {
                                time = Timestamp::parse_cim(a.value.as_bytes()).unwrap_or_default()
                            }
                            "SerialNumber" => serial = a.value.parse().unwrap_or_default(),
                            _ => {}
                        }
                    }
                }
                "Topic" => {
                    for a in e.attributes().flatten() {
                        match a.key.as_ref() {
                            "ID" => topic = Guid::parse(a.value.as_bytes()).unwrap_or_default(),
                            "Type" => topic_type = a.value.parse().unwrap_or_default(),
                            _ => {}
                        }
                    }
                }
                "State" => {
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == "ID" {
                            state = a.value.parse().unwrap_or_default();
                        }
                    }
                }
                "Param" => in_param = true,
                "ClientID" => in_client_id = true,
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if in_param {
                    param_len = t.len();
                } else if in_client_id {
                    fold.checksum ^= Guid::parse_sms_id(&t).map_or(0, |g| g.0);
                }
            }
            Ok(Event::End(e)) => match e.name().as_ref() {
                "StateMessage" => {
                    fold.add(time, serial, topic, topic_type, state, param_len);
                    param_len = 0;
                }
                "Param" => in_param = false,
                "ClientID" => in_client_id = false,
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The baseline extracts exactly what the scanner does, so the comparison is like for like.
    #[test]
    fn baseline_extracts_what_the_scanner_does() {
        let report = sample_report(150);
        assert!((38_000..48_000).contains(&report.len()), "{}", report.len());
        let mut fold = Fold::default();
        let summary = protocol::report::scan(&report, &mut fold).unwrap();
        assert_eq!((summary.records, summary.invalid), (150, 0));
        assert_eq!(quick_xml_loop(&report), fold);
    }
}
