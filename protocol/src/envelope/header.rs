//! The `Msg` header (wire.md §2): what the MP dispatches on.

use crate::cimtime::Timestamp;
use crate::guid::{Guid, GuidStyle};
use crate::xml::{Element, XmlError, XmlWriter};

/// A header hook (`Hook2 Name="clientauth"`, `Hook3 Name="zlib-compress"`) with its properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hook {
    /// The element name (`Hook2`, `Hook3`, ...).
    pub element: String,
    pub name: String,
    /// `<Property Name="X">text</Property>` children.
    pub properties: Vec<(String, String)>,
}

impl Hook {
    /// The value of hook property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The `Body` element: where the body is and how long (UTF-16 bytes, NUL included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyRange {
    pub kind: String,
    pub offset: u64,
    pub length: u64,
}

/// The CCM message header. Every element is optional on the wire (real MPs accept minimal
/// headers); absent text elements are empty strings here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgHeader {
    pub schema_version: String,
    pub reply_compression: String,
    pub id: String,
    /// The client's SMS ID (`GUID:…`); empty before registration.
    pub source_id: String,
    pub source_host: String,
    pub target_address: String,
    /// What the MP dispatches on: `MP_RelayEndpoint`, `MP_LocationManager`, ...
    pub target_endpoint: String,
    pub target_host: String,
    pub reply_to: String,
    /// `Sync` or `ASync`.
    pub reply_mode: String,
    pub priority: Option<u32>,
    /// Milliseconds.
    pub timeout: Option<u64>,
    pub sent_time: Option<Timestamp>,
    pub protocol: String,
    pub body: Option<BodyRange>,
    pub hooks: Vec<Hook>,
    /// `<Property Name=".." Value=".."/>` message properties (FileType=SMX for state messages).
    pub properties: Vec<(String, String)>,
    pub payload_type: String,
    pub correlation_id: String,
    pub req_version: String,
}

impl MsgHeader {
    /// Reads a header from its (already transcoded) XML text.
    pub fn parse(xml: &str) -> Result<MsgHeader, XmlError> {
        let root = Element::parse(xml)?.expect_root("Msg")?;
        let mut h = MsgHeader {
            schema_version: root.attr("SchemaVersion").unwrap_or_default().to_owned(),
            reply_compression: root.attr("ReplyCompression").unwrap_or_default().to_owned(),
            ..MsgHeader::default()
        };
        for child in &root.children {
            let text = || child.text.trim().to_owned();
            match child.name.as_str() {
                "ID" => h.id = text(),
                "SourceID" => h.source_id = text(),
                "SourceHost" => h.source_host = text(),
                "TargetAddress" => h.target_address = text(),
                "TargetEndpoint" => h.target_endpoint = text(),
                "TargetHost" => h.target_host = text(),
                "ReplyTo" => h.reply_to = text(),
                "ReplyMode" => h.reply_mode = text(),
                "Priority" => h.priority = child.text.trim().parse().ok(),
                "Timeout" => h.timeout = child.text.trim().parse().ok(),
                "SentTime" => h.sent_time = Timestamp::parse_iso(child.text.trim().as_bytes()).ok(),
                "Protocol" => h.protocol = text(),
                "CorrelationID" => h.correlation_id = text(),
                "ReqVersion" => h.req_version = text(),
                "Payload" => h.payload_type = child.attr("Type").unwrap_or_default().to_owned(),
                "Body" => {
                    h.body = Some(BodyRange {
                        kind: child.attr("Type").unwrap_or_default().to_owned(),
                        offset: child.attr("Offset").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
                        length: child.attr("Length").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
                    });
                }
                "Hooks" => {
                    for hook in &child.children {
                        h.hooks.push(Hook {
                            element: hook.name.clone(),
                            name: hook.attr("Name").unwrap_or_default().to_owned(),
                            properties: hook
                                .children_named("Property")
                                .map(|p| (p.attr("Name").unwrap_or_default().to_owned(), p.text.clone()))
                                .collect(),
                        });
                    }
                }
                "Property" => h.properties.push((
                    child.attr("Name").unwrap_or_default().to_owned(),
                    child.attr("Value").unwrap_or_default().to_owned(),
                )),
                _ => {}
            }
        }
        Ok(h)
    }

    /// Whether the body is announced as zlib-compressed (`Hook3 Name="zlib-compress"`).
    pub fn is_compressed(&self) -> bool {
        self.hooks.iter().any(|h| h.name.eq_ignore_ascii_case("zlib-compress"))
    }

    /// Adds or removes the zlib-compress hook.
    pub fn set_compressed(&mut self, on: bool) {
        self.hooks.retain(|h| !h.name.eq_ignore_ascii_case("zlib-compress"));
        if on {
            self.hooks.push(Hook {
                element: "Hook3".into(),
                name: "zlib-compress".into(),
                properties: Vec::new(),
            });
        }
    }

    /// The hook named `name` (`clientauth`), if the header has one.
    pub fn hook(&self, name: &str) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// The value of message property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the sender waits for a reply (`ReplyMode` Sync, the default).
    pub fn is_sync(&self) -> bool {
        !self.reply_mode.eq_ignore_ascii_case("async")
    }

    /// The header of the reply to this request: addressed back to `ReplyTo`, correlated with the
    /// request's ID, sent by `mp_host`.
    pub fn reply(&self, id: Guid, mp_host: &str, now: Timestamp) -> MsgHeader {
        let reply_endpoint = self.reply_to.rsplit(':').next().unwrap_or_default().to_owned();
        MsgHeader {
            schema_version: "1.1".into(),
            id: id.to_string_styled(GuidStyle::UpperBraced),
            source_host: mp_host.to_owned(),
            target_address: self.reply_to.clone(),
            target_endpoint: reply_endpoint,
            target_host: self.source_host.clone(),
            reply_mode: "Sync".into(),
            priority: self.priority,
            timeout: self.timeout,
            sent_time: Some(now),
            protocol: "http".into(),
            payload_type: "inline".into(),
            correlation_id: self.id.clone(),
            ..MsgHeader::default()
        }
    }

    /// The header as XML text, elements in the order CCM senders write them.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let mut root = Vec::new();
        if !self.reply_compression.is_empty() {
            root.push(("ReplyCompression", self.reply_compression.as_str()));
        }
        if !self.schema_version.is_empty() {
            root.push(("SchemaVersion", self.schema_version.as_str()));
        }
        w.open("Msg", &root);
        if let Some(b) = &self.body {
            let (offset, length) = (b.offset.to_string(), b.length.to_string());
            w.empty("Body", &[("Type", &b.kind), ("Length", &length), ("Offset", &offset)]);
        }
        let leaf = |w: &mut XmlWriter, name: &str, v: &str| {
            if !v.is_empty() {
                w.leaf(name, v);
            }
        };
        leaf(&mut w, "CorrelationID", &self.correlation_id);
        if self.hooks.is_empty() {
            w.empty("Hooks", &[]);
        } else {
            w.open("Hooks", &[]);
            for hook in &self.hooks {
                if hook.properties.is_empty() {
                    w.empty(&hook.element, &[("Name", &hook.name)]);
                } else {
                    w.open(&hook.element, &[("Name", &hook.name)]);
                    for (k, v) in &hook.properties {
                        w.open("Property", &[("Name", k)]).text(v).close("Property");
                    }
                    w.close(&hook.element);
                }
            }
            w.close("Hooks");
        }
        leaf(&mut w, "ID", &self.id);
        if !self.payload_type.is_empty() {
            w.empty("Payload", &[("Type", &self.payload_type)]);
        }
        if let Some(p) = self.priority {
            w.leaf("Priority", &p.to_string());
        }
        leaf(&mut w, "Protocol", &self.protocol);
        leaf(&mut w, "ReplyMode", &self.reply_mode);
        leaf(&mut w, "ReplyTo", &self.reply_to);
        leaf(&mut w, "ReqVersion", &self.req_version);
        if let Some(t) = self.sent_time {
            w.leaf("SentTime", &t.to_iso_seconds());
        }
        leaf(&mut w, "SourceID", &self.source_id);
        leaf(&mut w, "SourceHost", &self.source_host);
        leaf(&mut w, "TargetAddress", &self.target_address);
        leaf(&mut w, "TargetEndpoint", &self.target_endpoint);
        leaf(&mut w, "TargetHost", &self.target_host);
        if let Some(t) = self.timeout {
            w.leaf("Timeout", &t.to_string());
        }
        for (k, v) in &self.properties {
            w.empty("Property", &[("Name", k), ("Value", v)]);
        }
        w.close("Msg");
        w.finish()
    }
}
