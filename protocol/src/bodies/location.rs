//! `WSUSLocationRequest` / `WSUSLocationReply` (seed, "WSUS server location").

use super::{BodyError, bad, number, required, required_attr, root};
use crate::guid::{Guid, GuidStyle};
use crate::xml::XmlWriter;

/// One `IPAddress` of the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAddressInfo {
    pub subnet: String,
    pub address: String,
}

/// A `ClientLocationInfo`'s AD site (within [`crate::names::MAX_AD_SITE`]), forest, domain and
/// addresses (WSUS and content location requests alike).
pub(super) type Whereabouts = (String, String, String, Vec<IpAddressInfo>);

pub(super) fn read_whereabouts(location: Option<&crate::xml::Element>) -> Result<Whereabouts, BodyError> {
    let named = |child: &str| {
        location.and_then(|l| l.child(child)).and_then(|c| c.attr("Name")).unwrap_or_default().to_owned()
    };
    let ad_site = named("ADSite");
    if !crate::names::fits(&ad_site, crate::names::MAX_AD_SITE) {
        return Err(bad("ADSite Name", &ad_site));
    }
    let ips = location
        .and_then(|l| l.child("IPAddresses"))
        .map(|ips| {
            ips.children_named("IPAddress")
                .map(|ip| IpAddressInfo {
                    subnet: ip.attr("SubnetAddress").unwrap_or_default().to_owned(),
                    address: ip.attr("Address").unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((ad_site, named("Forest"), named("Domain"), ips))
}

/// What a `ClientLocationInfo` holds: the client's AD site, forest, domain and addresses.
pub(super) fn write_whereabouts(
    w: &mut XmlWriter,
    ad_site: &str,
    forest: &str,
    domain: &str,
    ips: &[IpAddressInfo],
) {
    w.empty("ADSite", &[("Name", ad_site)])
        .empty("Forest", &[("Name", forest)])
        .empty("Domain", &[("Name", domain)])
        .open("IPAddresses", &[]);
    for ip in ips {
        w.empty("IPAddress", &[("SubnetAddress", &ip.subnet), ("Address", &ip.address)]);
    }
    w.close("IPAddresses");
}

/// A client asking where to scan: the UpdateSource and content version from its policy, its
/// site, and where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsusLocationRequest {
    pub content_id: Guid,
    pub content_version: u32,
    pub site_code: String,
    pub on_internet: bool,
    pub ad_site: String,
    pub forest: String,
    pub domain: String,
    pub ip_addresses: Vec<IpAddressInfo>,
}

impl WsusLocationRequest {
    pub fn parse(xml: &str) -> Result<WsusLocationRequest, BodyError> {
        let e = root(xml, "WSUSLocationRequest")?;
        let content = required(&e, "Content")?;
        let id = required_attr(content, "ID")?;
        let location = e.child("ClientLocationInfo");
        let (ad_site, forest, domain, ip_addresses) = read_whereabouts(location)?;
        Ok(WsusLocationRequest {
            content_id: Guid::parse(id.trim().as_bytes()).map_err(|_| bad("Content ID", id))?,
            content_version: number("Content Version", required_attr(content, "Version")?)?,
            site_code: e
                .child("AssignedSite")
                .and_then(|s| s.attr("SiteCode"))
                .unwrap_or_default()
                .to_owned(),
            on_internet: location
                .and_then(|l| l.attr("OnInternet"))
                .is_some_and(|v| matches!(v.trim(), "1" | "true" | "True")),
            ad_site,
            forest,
            domain,
            ip_addresses,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let id = self.content_id.to_string_styled(GuidStyle::UpperBraced);
        w.open("WSUSLocationRequest", &[("SchemaVersion", "1.00")])
            .empty("Content", &[("ID", &id), ("Version", &self.content_version.to_string())])
            .empty("AssignedSite", &[("SiteCode", &self.site_code)])
            .open("ClientLocationInfo", &[("OnInternet", if self.on_internet { "1" } else { "0" })]);
        write_whereabouts(&mut w, &self.ad_site, &self.forest, &self.domain, &self.ip_addresses);
        w.close("ClientLocationInfo").close("WSUSLocationRequest");
        w.finish()
    }
}

/// One SUP the client may scan against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationRecord {
    pub wsus_url: String,
    pub server_name: String,
    pub version: u32,
}

/// The SUPs of one site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationSite {
    pub site_code: String,
    pub records: Vec<LocationRecord>,
}

/// The MP's answer: SUPs per site, in the MP's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsusLocationReply {
    pub sites: Vec<LocationSite>,
}

impl WsusLocationReply {
    pub fn parse(xml: &str) -> Result<WsusLocationReply, BodyError> {
        let e = root(xml, "WSUSLocationReply")?;
        let mut sites = Vec::new();
        for site in e.child("Sites").into_iter().flat_map(|s| s.children_named("Site")) {
            let mut records = Vec::new();
            for r in
                site.child("LocationRecords").into_iter().flat_map(|l| l.children_named("LocationRecord"))
            {
                records.push(LocationRecord {
                    wsus_url: required_attr(r, "WSUSURL")?.to_owned(),
                    server_name: r.attr("ServerName").unwrap_or_default().to_owned(),
                    version: number("LocationRecord Version", required_attr(r, "Version")?)?,
                });
            }
            sites.push(LocationSite {
                site_code: site
                    .child("MPSite")
                    .and_then(|m| m.attr("SiteCode"))
                    .unwrap_or_default()
                    .to_owned(),
                records,
            });
        }
        Ok(WsusLocationReply { sites })
    }

    /// Every record of every site, in order.
    pub fn records(&self) -> impl Iterator<Item = &LocationRecord> {
        self.sites.iter().flat_map(|s| s.records.iter())
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("WSUSLocationReply", &[("SchemaVersion", "1.00")]).open("Sites", &[]);
        for site in &self.sites {
            w.open("Site", &[])
                .empty("MPSite", &[("SiteCode", &site.site_code)])
                .open("LocationRecords", &[]);
            for r in &site.records {
                w.empty(
                    "LocationRecord",
                    &[
                        ("WSUSURL", &r.wsus_url),
                        ("ServerName", &r.server_name),
                        ("Version", &r.version.to_string()),
                    ],
                );
            }
            w.close("LocationRecords").close("Site");
        }
        w.close("Sites").close("WSUSLocationReply");
        w.finish()
    }
}
