//! Machine policy: `RequestAssignments` / `ReplyAssignments` (`MP_PolicyManager`), the policy
//! download URL, and the UpdateSource policy body (`CCM_UpdateSource`).

use super::{BodyError, bad, number, required, required_attr, root};
use crate::guid::{Guid, GuidStyle};
use crate::xml::{Element, XmlWriter};

/// `Identification/Machine`, as the client sent it (the reply echoes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identification {
    /// `GUID:…`
    pub client_id: String,
    pub fqdn: String,
    pub netbios_name: String,
    pub sid: String,
}

impl Identification {
    fn read(e: &Element) -> Identification {
        let machine = e.path(&["Identification", "Machine"]);
        let text = |name: &str| machine.and_then(|m| m.child_text(name)).unwrap_or_default().to_owned();
        Identification {
            client_id: text("ClientID"),
            fqdn: text("FQDN"),
            netbios_name: text("NetBIOSName"),
            sid: text("SID"),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.open("Identification", &[])
            .open("Machine", &[])
            .leaf("ClientID", &self.client_id)
            .leaf("FQDN", &self.fqdn)
            .leaf("NetBIOSName", &self.netbios_name);
        if self.sid.is_empty() {
            w.empty("SID", &[]);
        } else {
            w.leaf("SID", &self.sid);
        }
        w.close("Machine").empty("User", &[]).close("Identification");
    }
}

/// Who is polling: what a policy request says of the client, and the reply echoes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requester {
    pub identification: Identification,
    /// `SMS:PS1`; some senders hard-code `SMS:PRI`, which is accepted.
    pub policy_source: String,
    /// `Machine`.
    pub resource_type: String,
    pub server_cookie: String,
}

impl Requester {
    fn read(e: &Element) -> Requester {
        Requester {
            identification: Identification::read(e),
            policy_source: e.child_text("PolicySource").unwrap_or_default().to_owned(),
            resource_type: e
                .child("Resource")
                .and_then(|r| r.attr("ResourceType"))
                .unwrap_or("Machine")
                .to_owned(),
            server_cookie: e.child_text("ServerCookie").unwrap_or_default().to_owned(),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        self.identification.write(w);
        w.leaf("PolicySource", &self.policy_source)
            .empty("Resource", &[("ResourceType", &self.resource_type)]);
        if self.server_cookie.is_empty() {
            w.empty("ServerCookie", &[]);
        } else {
            w.leaf("ServerCookie", &self.server_cookie);
        }
    }
}

/// A client's policy poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAssignments {
    /// `ACK` (or `Ack`) attribute.
    pub ack: bool,
    /// `Full`, `OnUpdate` or `Always`.
    pub request_type: String,
    pub requester: Requester,
}

impl RequestAssignments {
    pub fn parse(xml: &str) -> Result<RequestAssignments, BodyError> {
        let e = root(xml, "RequestAssignments")?;
        Ok(RequestAssignments {
            ack: e.attr_ci("ACK").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            request_type: e.attr("RequestType").unwrap_or("Always").to_owned(),
            requester: Requester::read(&e),
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open(
            "RequestAssignments",
            &[
                ("SchemaVersion", "1.00"),
                ("ACK", if self.ack { "true" } else { "false" }),
                ("RequestType", &self.request_type),
            ],
        );
        self.requester.write(&mut w);
        w.close("RequestAssignments");
        w.finish()
    }
}

/// One assigned policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyAssignment {
    pub assignment_id: Guid,
    /// `{guid}` as the site writes it.
    pub policy_id: String,
    /// `40.00` style (major.minor).
    pub policy_version: String,
    pub policy_type: String,
    /// `UpdateSource` for the software-update scan policy.
    pub policy_category: String,
    /// Bits: 1 task sequence, 2 requires auth, 4 secret, 8 intranet only, 16 persist whole policy,
    /// 32 authorized dynamic download, 64 compressed.
    pub policy_flags: u32,
    pub policy_hash: String,
    /// The download URL with the literal `<mp>` the client replaces with its MP's host.
    pub location: String,
}

/// The MP's answer to a policy poll: what the client sent, echoed, and its assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyAssignments {
    pub reply_type: String,
    /// What the request said of the client, echoed.
    pub requester: Requester,
    pub assignments: Vec<PolicyAssignment>,
}

impl ReplyAssignments {
    /// The reply to `request` carrying `assignments`.
    pub fn answering(request: &RequestAssignments, assignments: Vec<PolicyAssignment>) -> ReplyAssignments {
        ReplyAssignments { reply_type: "Full".into(), requester: request.requester.clone(), assignments }
    }

    pub fn parse(xml: &str) -> Result<ReplyAssignments, BodyError> {
        let e = root(xml, "ReplyAssignments")?;
        let mut assignments = Vec::new();
        for a in e.children_named("PolicyAssignment") {
            let id = required_attr(a, "PolicyAssignmentID")?;
            let p = required(a, "Policy")?;
            let flags = p.attr("PolicyFlags").unwrap_or("0");
            assignments.push(PolicyAssignment {
                assignment_id: Guid::parse(id.trim().as_bytes())
                    .map_err(|_| bad("PolicyAssignmentID", id))?,
                policy_id: required_attr(p, "PolicyID")?.to_owned(),
                policy_version: required_attr(p, "PolicyVersion")?.to_owned(),
                policy_type: p.attr("PolicyType").unwrap_or_default().to_owned(),
                policy_category: p.attr("PolicyCategory").unwrap_or_default().to_owned(),
                policy_flags: number("PolicyFlags", flags)?,
                policy_hash: p
                    .child("PolicyLocation")
                    .and_then(|l| l.attr("PolicyHashEx").or(l.attr("PolicyHash")))
                    .unwrap_or_default()
                    .to_owned(),
                location: p.child_text("PolicyLocation").unwrap_or_default().to_owned(),
            });
        }
        Ok(ReplyAssignments {
            reply_type: e.attr("ReplyType").unwrap_or_default().to_owned(),
            requester: Requester::read(&e),
            assignments,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("ReplyAssignments", &[("SchemaVersion", "1.00"), ("ReplyType", &self.reply_type)]);
        self.requester.write(&mut w);
        for a in &self.assignments {
            let id = a.assignment_id.to_string_styled(GuidStyle::UpperBraced);
            w.open("PolicyAssignment", &[("PolicyAssignmentID", &id)])
                .open(
                    "Policy",
                    &[
                        ("PolicyID", &a.policy_id),
                        ("PolicyVersion", &a.policy_version),
                        ("PolicyType", &a.policy_type),
                        ("PolicyCategory", &a.policy_category),
                        ("PolicyFlags", &a.policy_flags.to_string()),
                    ],
                )
                .open("PolicyLocation", &[("PolicyHashEx", &a.policy_hash)])
                .cdata(&a.location)
                .close("PolicyLocation")
                .close("Policy")
                .close("PolicyAssignment");
        }
        w.close("ReplyAssignments");
        w.finish()
    }
}

/// The download location of a policy version, as assignments carry it:
/// `http://<mp>/SMS_MP/.sms_pol?{PolicyID}.40_00` for version `40.00`.
pub fn policy_location(policy_id: &str, policy_version: &str) -> String {
    format!("http://<mp>/SMS_MP/.sms_pol?{policy_id}.{}", policy_version.replace('.', "_"))
}

/// Splits the query of a policy download (`{PolicyID}.40_00` or `{PolicyID}.SHA256:<hex>`) into
/// the policy ID and the version (`40.00`) or hash (`SHA256:<hex>`).
pub fn parse_policy_query(query: &str) -> Option<(&str, String)> {
    let close = query.find('}')?;
    let (id, rest) = query.split_at(close + 1);
    let rest = rest.strip_prefix('.')?;
    if !id.starts_with('{') || rest.is_empty() {
        return None;
    }
    if rest.starts_with("SHA256:") {
        return Some((id, rest.to_owned()));
    }
    let version = rest.replacen('_', ".", 1);
    version
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .then_some((id, version))
}

/// The UpdateSource policy: which update source, at which content version, clients scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSourcePolicy {
    pub policy_id: String,
    pub policy_version: String,
    /// `SMS:PS1`
    pub policy_source: String,
    pub update_source_id: Guid,
    pub content_version: u32,
    /// 2 for WSUS (the seed's `ContentType=2`).
    pub content_type: u32,
}

impl UpdateSourcePolicy {
    /// Reads the policy body (already transcoded from UTF-16). The `CCM_UpdateSource` instance
    /// may sit inline in `PolicyAction` or as the CDATA text the site stores.
    pub fn parse(xml: &str) -> Result<UpdateSourcePolicy, BodyError> {
        let e = root(xml, "Policy")?;
        let action = e
            .children_named("PolicyRule")
            .filter_map(|r| r.child("PolicyAction"))
            .next()
            .ok_or(BodyError::Missing("PolicyAction"))?;
        let embedded;
        let instance = match action.child("instance") {
            Some(i) => i,
            None => {
                embedded = Element::parse(action.text.trim())?;
                &embedded
            }
        };
        if instance.attr("class") != Some("CCM_UpdateSource") {
            return Err(BodyError::Missing("CCM_UpdateSource instance"));
        }
        let property = |name: &'static str| {
            instance
                .children_named("property")
                .find(|p| p.attr("name") == Some(name))
                .and_then(|p| p.child_text("value"))
                .ok_or(BodyError::Missing(name))
        };
        let unique = property("UniqueID")?;
        Ok(UpdateSourcePolicy {
            policy_id: required_attr(&e, "PolicyID")?.to_owned(),
            policy_version: required_attr(&e, "PolicyVersion")?.to_owned(),
            policy_source: e.attr("PolicySource").unwrap_or_default().to_owned(),
            update_source_id: Guid::parse(unique.as_bytes()).map_err(|_| bad("UniqueID", unique))?,
            content_version: number("ContentVersion", property("ContentVersion")?)?,
            content_type: property("ContentType").map_or(Ok(2), |v| number("ContentType", v))?,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let unique = self.update_source_id.to_string_styled(GuidStyle::UpperBraced);
        let rule = format!("{{{}}}", Guid(self.update_source_id.0.rotate_left(64)).styled(GuidStyle::Lower));
        w.open(
            "Policy",
            &[
                ("PolicyType", "Machine"),
                ("SchemaVersion", "1.00"),
                ("PolicyID", &self.policy_id),
                ("PolicyVersion", &self.policy_version),
                ("PolicySource", &self.policy_source),
            ],
        )
        .open("PolicyRule", &[("PolicyRuleID", &rule)])
        .open("PolicyAction", &[("PolicyActionType", "WMI-XML")])
        .open("instance", &[("class", "CCM_UpdateSource")]);
        for (name, kind, value) in [
            ("UniqueID", "8", unique),
            ("ContentVersion", "19", self.content_version.to_string()),
            ("ContentType", "19", self.content_type.to_string()),
        ] {
            w.open("property", &[("name", name), ("type", kind)]).leaf("value", &value).close("property");
        }
        w.close("instance").close("PolicyAction").close("PolicyRule").close("Policy");
        w.finish()
    }
}
