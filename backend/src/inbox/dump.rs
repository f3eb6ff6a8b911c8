//! `backend inbox dump <FILE>`: an inbox file as an admin reads it. Every Report of a segment
//! is printed as the XML the client sent (the relay stores each Report's body as the MP decoded
//! it: UTF-8 XML, without the CCM envelope, LZ4-compressed by default; the dump decompresses
//! it), one after another, each on its own line; a
//! discovery record is printed as an XML comment naming the client, its name, where it is and
//! the site time. A plain `.SMX` file (one Report, as the product writes them) prints as it is.
//! A record that does not read ends the dump with an error naming its byte offset, after
//! everything before it has been printed.

use std::io::{self, Write};

use super::discovery::{self, Discovery};
use super::segment::{self, SegmentError};

/// What a dump printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dumped {
    pub reports: u64,
    pub discovery: u64,
}

/// Why a dump stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Segment(SegmentError),
    #[error("the discovery record #{0} does not decode")]
    Discovery(u64),
}

/// Prints the inbox file `bytes` to `out`.
pub fn dump(bytes: &[u8], out: &mut impl Write) -> Result<Dumped, DumpError> {
    let mut dumped = Dumped::default();
    if !segment::is_segment(bytes) {
        out.write_all(bytes)?;
        if !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        dumped.reports = 1;
        return Ok(dumped);
    }
    let mut scratch = Vec::new();
    for record in segment::records(bytes) {
        let record = record.and_then(|r| r.bytes(&mut scratch)).map_err(DumpError::Segment)?;
        if discovery::is_discovery(record) {
            dumped.discovery += 1;
            let d = Discovery::decode(record).ok_or(DumpError::Discovery(dumped.discovery))?;
            let place = d.location.map_or_else(String::new, |l| {
                format!(" ad-site=\"{}\" boundary-groups={:#x}", l.ad_site, l.boundary_groups)
            });
            let time = protocol::Timestamp(d.time).to_iso_seconds();
            // `--` may not appear inside an XML comment; names never hold it, but say so safely.
            let name = d.netbios_name.replace("--", "-\u{2010}");
            writeln!(out, "<!-- discovery: client=GUID:{} name=\"{name}\"{place} at {time} -->", d.client)?;
        } else {
            dumped.reports += 1;
            out.write_all(record)?;
            if !record.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(dumped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fixture;
    use crate::inbox::segment::SegmentWriter;
    use protocol::Guid;

    /// A segment's Reports come out byte for byte as they went in, discovery records as
    /// comments; damage stops the dump with what came before it printed.
    #[test]
    fn a_segment_prints_as_the_reports_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let three = fixture("report-three-messages.xml");
        let one = fixture("report-one-message.xml");
        let found = Discovery { client: Guid(7), netbios_name: "PC7".into(), location: None, time: 0 };
        let mut seg = SegmentWriter::create(tmp.path(), "01", 0).unwrap();
        seg.append_all([three.as_slice(), &found.encode(), one.as_slice()]).unwrap();
        let path = seg.seal().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut out = Vec::new();
        assert_eq!(dump(&bytes, &mut out).unwrap(), Dumped { reports: 2, discovery: 1 });
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(std::str::from_utf8(&three).unwrap().trim_end()), "{text}");
        assert!(
            text.contains("<!-- discovery: client=GUID:00000000-0000-0000-0000-000000000007 name=\"PC7\"")
        );
        assert!(text.trim_end().ends_with(std::str::from_utf8(&one).unwrap().trim_end()));

        let mut damaged = bytes.clone();
        let at = segment::HEADER + 20;
        damaged[at] ^= 0x55;
        let mut out = Vec::new();
        assert!(matches!(dump(&damaged, &mut out), Err(DumpError::Segment(SegmentError::Corrupt(_)))));
        // A plain SMX file prints as it is.
        let mut out = Vec::new();
        assert_eq!(dump(&one, &mut out).unwrap().reports, 1);
        assert!(out.starts_with(&one));
    }
}
