//! `ClientRegistrationRequest` / `ClientRegistrationResponse` (`MP_ClientRegistration`).
//!
//! The request shape is the one public client implementations send: a `Data` element with the
//! agent, its signing certificate and its discovery properties, then a `Signature` of the `Data`
//! element ([`crate::signing`] says what is signed; an MP requiring signing checks it).

use super::{BodyError, bad, required, required_attr, root};
use crate::cimtime::Timestamp;
use crate::guid::{Guid, GuidStyle};
use crate::xml::XmlWriter;

/// A client asking for an SMS ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRegistrationRequest {
    /// `RequestType` (`Registration`).
    pub request_type: String,
    pub timestamp: String,
    pub agent_identity: String,
    pub agent_version: String,
    /// `DiscoveryProperties/Property` name/value pairs, in order (`Netbios Name`, `FQ Name`,
    /// `Locale ID`, `InternetFlag`, ...).
    pub properties: Vec<(String, String)>,
    /// The signing certificate (X.509 DER), hex.
    pub signing_certificate: String,
    /// The `SignatureValue`: the `Data` element signed with the certificate's key, hex.
    pub signature: String,
}

impl ClientRegistrationRequest {
    pub fn parse(xml: &str) -> Result<ClientRegistrationRequest, BodyError> {
        let e = root(xml, "ClientRegistrationRequest")?;
        let data = required(&e, "Data")?;
        let agent = data.child("AgentInformation");
        let request = ClientRegistrationRequest {
            request_type: data.attr("RequestType").unwrap_or_default().to_owned(),
            timestamp: data.attr("TimeStamp").unwrap_or_default().to_owned(),
            agent_identity: agent.and_then(|a| a.attr("AgentIdentity")).unwrap_or_default().to_owned(),
            agent_version: agent.and_then(|a| a.attr("AgentVersion")).unwrap_or_default().to_owned(),
            properties: data
                .child("DiscoveryProperties")
                .into_iter()
                .flat_map(|d| d.children_named("Property"))
                .map(|p| {
                    Ok((required_attr(p, "Name")?.to_owned(), p.attr("Value").unwrap_or_default().to_owned()))
                })
                .collect::<Result<_, BodyError>>()?,
            signing_certificate: data
                .path(&["Certificates", "Signing"])
                .map(|s| s.text.trim().to_owned())
                .unwrap_or_default(),
            signature: e
                .path(&["Signature", "SignatureValue"])
                .map(|s| s.text.trim().to_owned())
                .unwrap_or_default(),
        };
        let name = request.netbios_name();
        if name.is_empty() || !crate::names::fits(name, crate::names::MAX_NETBIOS_NAME) {
            return Err(bad("Netbios Name", name));
        }
        Ok(request)
    }

    fn property(&self, name: &str) -> &str {
        self.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map_or("", |(_, v)| v)
    }

    /// The `Netbios Name` discovery property (required).
    pub fn netbios_name(&self) -> &str {
        self.property("Netbios Name")
    }

    /// The `FQ Name` discovery property.
    pub fn fqdn(&self) -> &str {
        self.property("FQ Name")
    }

    /// The request as XML, with its `signature` as it is.
    pub fn to_xml(&self) -> String {
        self.wrap(&self.data_xml(), &self.signature)
    }

    /// The request as XML, its `Data` element signed by `sign` (given what the signature
    /// covers, [`crate::signing::registration_messages`]), the signature kept in `signature`.
    pub fn to_signed_xml(&mut self, sign: impl FnOnce(&[u8]) -> String) -> String {
        let data = self.data_xml();
        let mut message = crate::utf16::encode(&data, false);
        message.extend_from_slice(&[0, 0]);
        self.signature = sign(&message);
        self.wrap(&data, &self.signature)
    }

    fn wrap(&self, data: &str, signature: &str) -> String {
        let mut w = XmlWriter::new();
        w.open("ClientRegistrationRequest", &[]).raw(data);
        w.open("Signature", &[])
            .leaf("SignatureValue", signature)
            .close("Signature")
            .close("ClientRegistrationRequest");
        w.finish()
    }

    /// The `Data` element: what the signature covers.
    fn data_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open(
            "Data",
            &[
                ("HashAlgorithm", crate::signing::HASH_ALGORITHM),
                ("SMSID", ""),
                ("RequestType", &self.request_type),
                ("TimeStamp", &self.timestamp),
            ],
        );
        w.empty(
            "AgentInformation",
            &[
                ("AgentIdentity", &self.agent_identity),
                ("AgentVersion", &self.agent_version),
                ("AgentType", "0"),
            ],
        )
        .open("Certificates", &[])
        .open("Encryption", &[("Encoding", "HexBinary"), ("KeyType", "1")])
        .text(&self.signing_certificate)
        .close("Encryption")
        .open("Signing", &[("Encoding", "HexBinary"), ("KeyType", "1")])
        .text(&self.signing_certificate)
        .close("Signing")
        .close("Certificates")
        .open("DiscoveryProperties", &[]);
        for (k, v) in &self.properties {
            w.empty("Property", &[("Name", k), ("Value", v)]);
        }
        w.close("DiscoveryProperties").close("Data");
        w.finish()
    }
}

/// The MP's answer: the client's SMS ID and whether it is approved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRegistrationResponse {
    /// 0 registered, 1 pending approval.
    pub status: u32,
    pub sms_id: Guid,
    pub timestamp: Option<Timestamp>,
}

impl ClientRegistrationResponse {
    pub fn parse(xml: &str) -> Result<ClientRegistrationResponse, BodyError> {
        let e = root(xml, "ClientRegistrationResponse")?;
        let sms_id = required_attr(&e, "SMSID")?;
        Ok(ClientRegistrationResponse {
            status: e.attr("Status").map_or(Ok(0), |s| s.trim().parse().map_err(|_| bad("Status", s)))?,
            sms_id: Guid::parse_sms_id(sms_id).map_err(|_| bad("SMSID", sms_id))?,
            timestamp: e.attr("TimeStamp").and_then(|t| Timestamp::parse_iso(t.as_bytes()).ok()),
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let sms_id = format!("GUID:{}", self.sms_id.styled(GuidStyle::Upper));
        let time = self.timestamp.map(Timestamp::to_iso_seconds).unwrap_or_default();
        w.empty(
            "ClientRegistrationResponse",
            &[
                ("ResponseType", "Registration"),
                ("TimeStamp", &time),
                ("SMSID", &sms_id),
                ("Status", &self.status.to_string()),
                ("ApprovalStatus", if self.status == 0 { "1" } else { "0" }),
            ],
        );
        w.finish()
    }
}
