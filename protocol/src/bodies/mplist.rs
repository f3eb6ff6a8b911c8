//! `GET /SMS_MP/.sms_aut?MPLIST`: the MPs a client may use.

use super::{BodyError, number, required_attr, root};
use crate::xml::XmlWriter;

/// One MP of the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpEntry {
    pub name: String,
    pub fqdn: String,
    /// The MP's build number (`9128`).
    pub version: u32,
    /// `Capabilities/Property[@Name="SSLState"]`: 0 HTTP, 1 HTTPS.
    pub ssl_state: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpList {
    pub mps: Vec<MpEntry>,
}

impl MpList {
    pub fn parse(xml: &str) -> Result<MpList, BodyError> {
        let e = root(xml, "MPList")?;
        let mut mps = Vec::new();
        for mp in e.children_named("MP") {
            let ssl = mp
                .child("Capabilities")
                .into_iter()
                .flat_map(|c| c.children_named("Property"))
                .find(|p| p.attr("Name") == Some("SSLState"))
                .and_then(|p| p.attr("Value"));
            mps.push(MpEntry {
                name: required_attr(mp, "Name")?.to_owned(),
                fqdn: mp.attr("FQDN").unwrap_or_default().to_owned(),
                version: match mp.child_text("Version") {
                    Some(v) => number("MP Version", v)?,
                    None => 0,
                },
                ssl_state: match ssl {
                    Some(v) => number("SSLState", v)?,
                    None => 0,
                },
            });
        }
        Ok(MpList { mps })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("MPList", &[]);
        for mp in &self.mps {
            w.open("MP", &[("Name", &mp.name), ("FQDN", &mp.fqdn)])
                .leaf("Version", &mp.version.to_string())
                .open("Capabilities", &[("SchemaVersion", "1.0")])
                .empty("Property", &[("Name", "SSLState"), ("Value", &mp.ssl_state.to_string())])
                .close("Capabilities")
                .close("MP");
        }
        w.close("MPList");
        w.finish()
    }
}
