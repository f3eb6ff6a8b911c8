//! What a simulated client writes: the header of each message it sends an MP, and its bulk
//! state-message Reports (`protocol::report::ReportWriter` with the client's identity). The
//! closed-model clients, the open model and the crash harness all write through here.

use protocol::envelope::MsgHeader;
use protocol::report::write::Param;
use protocol::report::{OutMessage, ReportIdentity, ReportWriter};
use protocol::{Guid, GuidStyle, Timestamp};

/// The version the simulated clients give (a ConfigMgr 2403 client).
pub const CLIENT_VERSION: &str = "5.00.7958.1000";

/// The relay endpoint: Reports go there, asynchronously.
pub const RELAY: &str = "MP_RelayEndpoint";

/// The header of message `id` from `netbios_name` (SMS ID `client`, once it has one) to
/// `endpoint`: relayed Reports are asynchronous at priority 5 with `FileType=SMX`, everything
/// else synchronous at priority 3, as the client sends them.
pub fn header(id: Guid, client: Option<Guid>, netbios_name: &str, endpoint: &str) -> MsgHeader {
    let relay = endpoint == RELAY;
    MsgHeader {
        id: format!("{{{id}}}"),
        source_id: client.map(|g| format!("GUID:{g}")).unwrap_or_default(),
        source_host: netbios_name.to_owned(),
        target_endpoint: endpoint.to_owned(),
        reply_to: format!("direct:{netbios_name}:SccmMessaging"),
        reply_mode: if relay { "ASync" } else { "Sync" }.into(),
        priority: Some(if relay { 5 } else { 3 }),
        properties: if relay { vec![("FileType".into(), "SMX".into())] } else { Vec::new() },
        ..MsgHeader::default()
    }
}

/// About what one state message takes in a Report (a 500 message is 280-300 bytes).
const MESSAGE_BYTES: usize = 300;

/// One Report being written.
#[derive(Debug)]
pub struct Report {
    writer: ReportWriter,
}

impl Report {
    /// A Report from `client` (`netbios_name`), dated `time`, of about `messages` state
    /// messages (room is made for them at once).
    pub fn begin(client: Guid, netbios_name: &str, time: Timestamp, messages: usize) -> Report {
        let mut writer = ReportWriter::with_capacity(512 + messages.saturating_mul(MESSAGE_BYTES));
        writer.begin(
            &ReportIdentity { client, netbios_name, client_version: CLIENT_VERSION, priority: 5 },
            time,
        );
        Report { writer }
    }

    /// A 500 (update detection) message: `update` (at `revision`) is in `state`.
    pub fn update(&mut self, update: Guid, revision: u32, state: u8, time: Timestamp, serial: u64) {
        self.writer.push(&OutMessage {
            time,
            serial,
            topic_id: update,
            topic_style: GuidStyle::Lower,
            topic_type: 500,
            id_type: 3,
            state: u32::from(state),
            criticality: 0,
            params: &[Param::Number(u64::from(revision))],
        });
    }

    /// A 501 (update source scan) message: the scan against `update_source` at
    /// `content_version` is in `state`.
    pub fn scan(
        &mut self,
        update_source: Guid,
        content_version: u32,
        state: u8,
        time: Timestamp,
        serial: u64,
    ) {
        self.writer.push(&OutMessage {
            time,
            serial,
            topic_id: update_source,
            topic_style: GuidStyle::UpperBraced,
            topic_type: 501,
            id_type: 3,
            state: u32::from(state),
            criticality: 0,
            params: &[Param::Number(u64::from(content_version))],
        });
    }

    /// The Report's XML.
    pub fn finish(self) -> String {
        self.writer.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a Report written here reads back as, through the MP's scanner.
    #[test]
    fn reports_read_back() {
        let client = Guid(0x1234);
        let mut r = Report::begin(client, "PC0001", Timestamp(1_000_000), 2);
        r.update(Guid(7), 200, 2, Timestamp(2_000_000), 1);
        r.scan(Guid(9), 39, 3, Timestamp(3_000_000), 2);
        let xml = r.finish();
        let mut read = protocol::report::Collect::default();
        protocol::report::scan(xml.as_bytes(), &mut read).expect("scans");
        assert_eq!(read.headers[0].client, Some(client));
        assert_eq!(read.headers[0].netbios_name.as_deref(), Some("PC0001"));
        assert_eq!(read.headers[0].client_version.as_deref(), Some(CLIENT_VERSION));
        let m: Vec<_> =
            read.messages.iter().map(|m| (m.topic_type, m.state, m.serial, m.invalid.is_none())).collect();
        assert_eq!(m, [(500, 2, 1, true), (501, 3, 2, true)]);
        let h = header(Guid(5), Some(client), "PC0001", RELAY);
        assert_eq!((h.reply_mode.as_str(), h.priority), ("ASync", Some(5)));
        assert_eq!(h.properties, [("FileType".to_owned(), "SMX".to_owned())]);
        assert!(header(Guid(5), None, "PC0001", "MP_ClientRegistration").source_id.is_empty());
    }
}
