//! `ContentLocationRequest` / `ContentLocationReply` (`MP_LocationManager`): where a client may
//! download content (a software update's files: `LocationType="SMSUpdate"`). The shapes are the
//! ones Microsoft's task-sequence troubleshooting guide shows in `ContentTransferManager.log`
//! and `MP_Location.log`.

use super::{BodyError, bad, number, required, required_attr, root};
use crate::bodies::IpAddressInfo;
use crate::xml::XmlWriter;

/// A client asking where a package's content is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentLocationRequest {
    /// `Package ID` (`UID:Content_<guid>` for update content, or a package ID).
    pub package_id: String,
    pub version: u32,
    pub site_code: String,
    /// `LocationType` (`SMSUpdate`, `SMSPackage`, ...).
    pub location_type: String,
    /// `UseInternetDP="1"`: the client is on the internet.
    pub on_internet: bool,
    pub ad_site: String,
    pub forest: String,
    pub domain: String,
    pub ip_addresses: Vec<IpAddressInfo>,
}

impl ContentLocationRequest {
    pub fn parse(xml: &str) -> Result<ContentLocationRequest, BodyError> {
        let e = root(xml, "ContentLocationRequest")?;
        let package = required(&e, "Package")?;
        let location = e.child("ClientLocationInfo");
        let (ad_site, forest, domain, ip_addresses) = super::location::read_whereabouts(location)?;
        let package_id = required_attr(package, "ID")?.trim();
        if package_id.is_empty() || package_id.len() > 128 {
            return Err(bad("Package ID", package_id));
        }
        Ok(ContentLocationRequest {
            package_id: package_id.to_owned(),
            version: number("Package Version", required_attr(package, "Version")?)?,
            site_code: e
                .child("AssignedSite")
                .and_then(|s| s.attr("SiteCode"))
                .unwrap_or_default()
                .to_owned(),
            location_type: location.and_then(|l| l.attr("LocationType")).unwrap_or_default().to_owned(),
            on_internet: location.and_then(|l| l.attr("UseInternetDP")).is_some_and(|v| v.trim() == "1"),
            ad_site,
            forest,
            domain,
            ip_addresses,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("ContentLocationRequest", &[("SchemaVersion", "1.00"), ("ExcludeFileList", "")])
            .empty("Package", &[("ID", &self.package_id), ("Version", &self.version.to_string())])
            .empty("AssignedSite", &[("SiteCode", &self.site_code)])
            .open(
                "ClientLocationInfo",
                &[
                    ("LocationType", &self.location_type),
                    ("UseInternetDP", if self.on_internet { "1" } else { "0" }),
                    ("AllowHTTP", "1"),
                ],
            );
        super::location::write_whereabouts(
            &mut w,
            &self.ad_site,
            &self.forest,
            &self.domain,
            &self.ip_addresses,
        );
        w.close("ClientLocationInfo").close("ContentLocationRequest");
        w.finish()
    }
}

/// One distribution point holding the content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpRecord {
    /// Where the content is (`http://dp/SMS_DP_SMSPKG$/<content>.<version>`).
    pub url: String,
    /// Where its signature is.
    pub signature: String,
    pub ad_site: String,
    pub subnets: Vec<String>,
    /// The DP's build.
    pub version: u32,
    /// The DP's FQDN.
    pub server: String,
    /// `LOCAL` (in the client's boundary groups), `NEIGHBOR`, `REMOTE`.
    pub locality: String,
}

/// The MP's answer: the DPs of the client's site that hold the content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentLocationReply {
    pub site_code: String,
    pub records: Vec<DpRecord>,
}

impl ContentLocationReply {
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("ContentLocationReply", &[("SchemaVersion", "1.00")])
            .open("ContentInfo", &[("PackageFlags", "0")])
            .empty("ContentHashValues", &[])
            .close("ContentInfo")
            .open("Sites", &[])
            .open("Site", &[])
            .empty(
                "MPSite",
                &[
                    ("SiteCode", &self.site_code),
                    ("MasterSiteCode", &self.site_code),
                    ("SiteLocality", "LOCAL"),
                    ("IISPreferedPort", "80"),
                    ("IISSSLPreferedPort", "443"),
                ],
            );
        if self.records.is_empty() {
            w.empty("LocationRecords", &[]);
        } else {
            w.open("LocationRecords", &[]);
            for r in &self.records {
                w.open("LocationRecord", &[])
                    .empty("URL", &[("Name", &r.url), ("Signature", &r.signature)])
                    .empty("ADSite", &[("Name", &r.ad_site)])
                    .open("IPSubnets", &[]);
                for s in &r.subnets {
                    w.empty("IPSubnet", &[("Address", s)]);
                }
                w.close("IPSubnets")
                    .empty("Metric", &[("Value", "")])
                    .leaf("Version", &r.version.to_string())
                    .open("Capabilities", &[("SchemaVersion", "1.0")])
                    .empty("Property", &[("Name", "SSLState"), ("Value", "0")])
                    .close("Capabilities")
                    .leaf("ServerRemoteName", &r.server)
                    .leaf("DPType", "SERVER")
                    .empty("Windows", &[("Trust", "1")])
                    .leaf("Locality", &r.locality)
                    .close("LocationRecord");
            }
            w.close("LocationRecords");
        }
        w.close("Site").close("Sites").empty("RelatedContentIDs", &[]).close("ContentLocationReply");
        w.finish()
    }

    pub fn parse(xml: &str) -> Result<ContentLocationReply, BodyError> {
        let e = root(xml, "ContentLocationReply")?;
        let mut reply = ContentLocationReply::default();
        for site in e.child("Sites").into_iter().flat_map(|s| s.children_named("Site")) {
            if reply.site_code.is_empty() {
                reply.site_code =
                    site.child("MPSite").and_then(|m| m.attr("SiteCode")).unwrap_or_default().to_owned();
            }
            for r in
                site.child("LocationRecords").into_iter().flat_map(|l| l.children_named("LocationRecord"))
            {
                let text = |name: &str| r.child(name).map(|c| c.text.trim().to_owned()).unwrap_or_default();
                let url = required(r, "URL")?;
                reply.records.push(DpRecord {
                    url: required_attr(url, "Name")?.to_owned(),
                    signature: url.attr("Signature").unwrap_or_default().to_owned(),
                    ad_site: r.child("ADSite").and_then(|a| a.attr("Name")).unwrap_or_default().to_owned(),
                    subnets: r
                        .child("IPSubnets")
                        .into_iter()
                        .flat_map(|s| s.children_named("IPSubnet"))
                        .filter_map(|s| s.attr("Address").filter(|a| !a.is_empty()).map(str::to_owned))
                        .collect(),
                    version: text("Version").parse().unwrap_or(0),
                    server: text("ServerRemoteName"),
                    locality: text("Locality"),
                });
            }
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request in Microsoft's guide (ContentTransferManager.log), as a client sends it.
    const GUIDE_REQUEST: &str = r#"<ContentLocationRequest SchemaVersion="1.00" ExcludeFileList=""><Package ID="UID:Content_63fbf078-1815-4e37-9614-b60ce7947805" Version="1"/><AssignedSite SiteCode="MEH"/><ClientLocationInfo LocationType="SMSUpdate" DistributeOnDemand="0" UseAzure="0" AllowWUMU="0" UseProtected="0" AllowCaching="0" BranchDPFlags="0" UseInternetDP="0" AllowHTTP="1" AllowSMB="0" AllowMulticast="0"><ADSite Name="Default-First-Site-Name"/><Forest Name="contoso.com"/><Domain Name="contoso.com"/><IPAddresses><IPAddress SubnetAddress="10.10.25.128" Address="10.10.25.130"/><IPAddress SubnetAddress="10.10.25.128" Address="10.10.25.166"/></IPAddresses></ClientLocationInfo></ContentLocationRequest>"#;

    #[test]
    fn the_guide_s_request_reads_and_round_trips() {
        let r = ContentLocationRequest::parse(GUIDE_REQUEST).unwrap();
        assert_eq!(r.package_id, "UID:Content_63fbf078-1815-4e37-9614-b60ce7947805");
        assert_eq!((r.version, r.site_code.as_str(), r.location_type.as_str()), (1, "MEH", "SMSUpdate"));
        assert_eq!(
            (r.ad_site.as_str(), r.ip_addresses.len(), r.on_internet),
            ("Default-First-Site-Name", 2, false)
        );
        assert_eq!(ContentLocationRequest::parse(&r.to_xml()).unwrap(), r);
        assert!(ContentLocationRequest::parse("<ContentLocationRequest/>").is_err());
        assert!(
            ContentLocationRequest::parse(&GUIDE_REQUEST.replace("Version=\"1\"", "Version=\"x\"")).is_err()
        );
    }

    #[test]
    fn replies_round_trip() {
        let reply = ContentLocationReply {
            site_code: "PS1".into(),
            records: vec![DpRecord {
                url: "http://PS1DP.contoso.com/SMS_DP_SMSPKG$/Content_1.1".into(),
                signature: "http://PS1DP.contoso.com/SMS_DP_SMSSIG$/Content_1.1.tar".into(),
                ad_site: "Default-First-Site-Name".into(),
                subnets: vec!["10.10.25.128".into()],
                version: 9128,
                server: "PS1DP.contoso.com".into(),
                locality: "LOCAL".into(),
            }],
        };
        assert_eq!(ContentLocationReply::parse(&reply.to_xml()).unwrap(), reply);
        let none = ContentLocationReply { site_code: "PS1".into(), records: vec![] };
        assert_eq!(ContentLocationReply::parse(&none.to_xml()).unwrap(), none);
    }
}
