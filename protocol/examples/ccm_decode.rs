//! Decodes a captured `CCM_POST` body and prints its header, and for a state-message Report
//! every record with its validity.
//!
//! ```sh
//! cargo run --release -p protocol --example ccm_decode -- ../shared/fixtures/ccm-relay-report-three.bin
//! ```
//! A second argument gives the Content-Type if the boundary is not the usual one.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use protocol::envelope::{self, CONTENT_TYPE, Limits};
use protocol::report::{self, ReportHeader, ReportSink, StateMessage};
use protocol::statenames;

struct Print;

impl<'a> ReportSink<'a> for Print {
    fn on_header(&mut self, h: &ReportHeader<'a>) {
        println!(
            "client {} ({}), version {}, priority {}",
            h.client.map_or_else(|| "<no ClientID>".to_owned(), |g| format!("GUID:{g}")),
            h.netbios_name.as_deref().unwrap_or("?"),
            h.client_version.as_deref().unwrap_or("?"),
            h.priority.map_or_else(|| "?".to_owned(), |p| p.to_string()),
        );
    }

    fn on_state_message(&mut self, m: &StateMessage<'a>) {
        let state = statenames::state_name(m.topic_type, m.state).unwrap_or("?");
        let params: Vec<&str> = m.params.iter().collect();
        let verdict = m.invalid.map_or_else(|| "ok".to_owned(), |why| format!("INVALID: {why}"));
        println!(
            "  #{} {} topic {} type {} state {} ({state}) params {params:?}  {verdict}",
            m.serial,
            m.time.to_rfc3339(),
            m.topic_id.styled(protocol::GuidStyle::Lower),
            m.topic_type,
            m.state,
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: ccm_decode <CCM_POST body file> [content-type]");
        return ExitCode::from(2);
    };
    let content_type = args.get(1).map_or(CONTENT_TYPE, String::as_str);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let request = match envelope::decode_request(content_type, &bytes, &Limits::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let h = &request.header;
    println!("endpoint {} ({}), reply {}", h.target_endpoint, h.target_address, h.reply_mode);
    let sent = h.sent_time.map_or_else(|| "?".to_owned(), |t| t.to_iso_seconds());
    println!("from {} {}, message {}, sent {sent}", h.source_host, h.source_id, h.id);
    println!("properties {:?}, compressed {}", h.properties, request.compressed);
    if !request.body.contains("<Report") {
        println!("{}", request.body);
        return ExitCode::SUCCESS;
    }
    match report::scan(request.body.as_bytes(), &mut Print) {
        Ok(s) => {
            println!("{} records, {} invalid", s.records, s.invalid);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
