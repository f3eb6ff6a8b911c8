//! The low-rate message bodies, each readable and writable (wire.md §5). Readers are lenient the
//! way real MPs are: children in any order, unknown elements ignored, attribute names matched
//! exactly except where senders are known to differ.

mod content;
mod ddr;
mod keyinfo;
mod location;
mod mplist;
mod policy;
mod registration;

pub use content::{ContentLocationReply, ContentLocationRequest, DpRecord};
pub use ddr::{DISCOVERY_ACTION, DiscoveryRecord};
pub use keyinfo::{MpKeyInformation, UnknownMachines, X509CertificateReply};
pub use location::{IpAddressInfo, LocationRecord, LocationSite, WsusLocationReply, WsusLocationRequest};
pub use mplist::{MpEntry, MpList};
pub use policy::{
    Identification, PolicyAssignment, ReplyAssignments, RequestAssignments, Requester, UpdateSourcePolicy,
    parse_policy_query, policy_location,
};
pub use registration::{ClientRegistrationRequest, ClientRegistrationResponse};

use crate::xml::{Element, XmlError};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("not well-formed XML: {0}")]
    Xml(#[from] XmlError),
    #[error("<{0}> is missing")]
    Missing(&'static str),
    #[error("{field} is not valid: {value:?}")]
    Bad { field: &'static str, value: String },
}

fn bad(field: &'static str, value: &str) -> BodyError {
    BodyError::Bad { field, value: value.chars().take(80).collect() }
}

/// Parses `xml` and requires its root to be `root`.
fn root(xml: &str, root: &'static str) -> Result<Element, BodyError> {
    let e = Element::parse(xml)?;
    if e.name != root {
        return Err(BodyError::Missing(root));
    }
    Ok(e)
}

fn required<'e>(e: &'e Element, name: &'static str) -> Result<&'e Element, BodyError> {
    e.child(name).ok_or(BodyError::Missing(name))
}

fn required_attr<'e>(e: &'e Element, name: &'static str) -> Result<&'e str, BodyError> {
    e.attr(name).ok_or(BodyError::Missing(name))
}

fn number<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, BodyError> {
    value.trim().parse().map_err(|_| bad(field, value))
}
