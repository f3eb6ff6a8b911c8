//! A client's discovery data record (`MP_DdrEndpoint`): a `Report` whose `InventoryAction` is
//! the predefined discovery action, `{00000000-0000-0000-0000-000000000003}`. Its header names
//! the client (`ClientID`, `NetBIOSName`) as a state-message Report's does; its body holds WMI
//! instances (`CCM_ExtNetworkAdapterConfiguration` with the FQDN, `CCM_ADSiteInfo`,
//! `CCM_ComputerSystem` with the domain, `CCM_NetworkAdapterConfiguration` with `IPSubnet`s,
//! `Win32_NetworkAdapterConfiguration` with `IPAddress`es). The shape is the one public tools
//! that impersonate clients send (a DDR sent ahead of a client-push request); a client sends the
//! record as the message body with an earlier copy as an attachment before it.

use super::{BodyError, bad};
use crate::names::{MAX_AD_SITE, MAX_NETBIOS_NAME, fits};
use crate::xml::{Element, XmlWriter};
use crate::{Guid, GuidStyle};

/// The discovery action's `InventoryActionID`.
pub const DISCOVERY_ACTION: &str = "{00000000-0000-0000-0000-000000000003}";

/// The most addresses (and subnets) a record keeps: a machine with more adapters than this is
/// described by its first ones.
const MAX_ADDRESSES: usize = 64;

/// What a discovery record says about its client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryRecord {
    pub client: Guid,
    pub netbios_name: String,
    pub fqdn: String,
    pub domain: String,
    pub ad_site: String,
    /// `Win32_NetworkAdapterConfiguration` `IPAddress` values, in order.
    pub ip_addresses: Vec<String>,
    /// `CCM_NetworkAdapterConfiguration` `IPSubnet` values, in order.
    pub subnets: Vec<String>,
}

impl DiscoveryRecord {
    /// Reads a `Report`. `Ok(None)`: a well-formed document that is not a discovery record (an
    /// inventory report, say); `Err`: not XML, or a discovery record that does not say whose.
    pub fn parse(xml: &str) -> Result<Option<DiscoveryRecord>, BodyError> {
        let e = Element::parse(xml)?;
        let header = e.child("ReportHeader").filter(|_| e.name == "Report");
        let action =
            header.and_then(|h| h.child("InventoryAction")).and_then(|a| a.child_text("InventoryActionID"));
        let Some(header) = header else { return Ok(None) };
        if !action.is_some_and(|id| id.eq_ignore_ascii_case(DISCOVERY_ACTION)) {
            return Ok(None);
        }
        let machine = header.path(&["Identification", "Machine"]).ok_or(BodyError::Missing("Machine"))?;
        let id = machine.child_text("ClientID").ok_or(BodyError::Missing("ClientID"))?;
        let client = Guid::parse_sms_id(id).map_err(|_| bad("ClientID", id))?;
        let netbios_name = machine.child_text("NetBIOSName").unwrap_or_default();
        if !fits(netbios_name, MAX_NETBIOS_NAME) {
            return Err(bad("NetBIOSName", netbios_name));
        }
        let body = e.child("ReportBody");
        let values = |class: &str, property: &str| -> Vec<String> {
            body.into_iter()
                .flat_map(|b| b.children_named("Instance"))
                .filter(|i| i.attr("Class") == Some(class))
                .filter_map(|i| i.child(class))
                .flat_map(|c| c.children_named(property))
                .map(|p| p.text.trim().to_owned())
                .filter(|v| !v.is_empty())
                .take(MAX_ADDRESSES)
                .collect()
        };
        let first =
            |class: &str, property: &str| values(class, property).into_iter().next().unwrap_or_default();
        let ad_site = first("CCM_ADSiteInfo", "ADSiteName");
        if !fits(&ad_site, MAX_AD_SITE) {
            return Err(bad("ADSiteName", &ad_site));
        }
        Ok(Some(DiscoveryRecord {
            client,
            netbios_name: netbios_name.to_owned(),
            fqdn: first("CCM_ExtNetworkAdapterConfiguration", "FQDN"),
            domain: first("CCM_ComputerSystem", "Domain"),
            ad_site,
            ip_addresses: values("Win32_NetworkAdapterConfiguration", "IPAddress"),
            subnets: values("CCM_NetworkAdapterConfiguration", "IPSubnet"),
        }))
    }

    /// The record as a client sends it (`date`: the report's WMI datetime,
    /// `20261203101500.000000+000`).
    pub fn to_xml_at(&self, date: &str) -> String {
        let mut w = XmlWriter::new();
        let id = format!("GUID:{}", self.client.styled(GuidStyle::Upper));
        w.open("Report", &[])
            .open("ReportHeader", &[])
            .open("Identification", &[])
            .open("Machine", &[])
            .leaf("ClientInstalled", "1")
            .leaf("ClientType", "1")
            .leaf("ClientID", &id)
            .leaf("ClientVersion", "5.00.9128.1000")
            .leaf("NetBIOSName", &self.netbios_name)
            .leaf("CodePage", "437")
            .leaf("SystemDefaultLCID", "1033")
            .close("Machine")
            .close("Identification")
            .open("ReportDetails", &[])
            .leaf("ReportContent", "Inventory Data")
            .leaf("ReportType", "Full")
            .leaf("Date", date)
            .leaf("Version", "1.0")
            .leaf("Format", "1.1")
            .close("ReportDetails")
            .open("InventoryAction", &[("ActionType", "Predefined")])
            .leaf("InventoryActionID", DISCOVERY_ACTION)
            .leaf("Description", "Discovery")
            .leaf("InventoryActionLastUpdateTime", date)
            .close("InventoryAction")
            .close("ReportHeader")
            .open("ReportBody", &[]);
        let namespace = format!("\\\\{}\\root\\ccm", self.netbios_name);
        let mut instance = |class: &str, properties: &[(&str, &[String])]| {
            w.open(
                "Instance",
                &[("Content", "New"), ("Namespace", &namespace), ("Class", class), ("ParentClass", class)],
            )
            .open(class, &[]);
            for (name, values) in properties {
                for v in *values {
                    w.leaf(name, v);
                }
            }
            w.close(class).close("Instance");
        };
        let one = |v: &str| if v.is_empty() { Vec::new() } else { vec![v.to_owned()] };
        instance("CCM_ComputerSystem", &[("Domain", &one(&self.domain))]);
        instance("CCM_ADSiteInfo", &[("ADSiteName", &one(&self.ad_site))]);
        instance("CCM_ExtNetworkAdapterConfiguration", &[("FQDN", &one(&self.fqdn))]);
        instance("CCM_NetworkAdapterConfiguration", &[("IPSubnet", &self.subnets)]);
        instance("Win32_NetworkAdapterConfiguration", &[("IPAddress", &self.ip_addresses)]);
        w.close("ReportBody").close("Report");
        w.finish()
    }

    /// [`DiscoveryRecord::to_xml_at`] at the epoch, for round trips.
    pub fn to_xml(&self) -> String {
        self.to_xml_at("19700101000000.000000+000")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record public client-impersonation tools send, byte for byte in its structure.
    const TOOL_DDR: &str = r#"<Report><ReportHeader><Identification><Machine><ClientInstalled>0</ClientInstalled><ClientType>1</ClientType><ClientID>GUID:257EC4DF-C376-43A9-BAD1-D4AA25B48A2C</ClientID><ClientVersion>5.00.8325.0000</ClientVersion><NetBIOSName>CAVE-PC</NetBIOSName><CodePage>437</CodePage><SystemDefaultLCID>1033</SystemDefaultLCID><Priority /></Machine></Identification><ReportDetails><ReportContent>Inventory Data</ReportContent><ReportType>Full</ReportType><Date>20261203101500.575000+120</Date><Version>1.0</Version><Format>1.1</Format></ReportDetails><InventoryAction ActionType="Predefined"><InventoryActionID>{00000000-0000-0000-0000-000000000003}</InventoryActionID><Description>Discovery</Description><InventoryActionLastUpdateTime>20261203101500.590000+000</InventoryActionLastUpdateTime></InventoryAction></ReportHeader><ReportBody><Instance Content="New" Namespace="\\CAVE-PC\root\ccm" Class="CCM_ComputerSystem" ParentClass="CCM_ComputerSystem"><CCM_ComputerSystem><Domain>contoso.com</Domain></CCM_ComputerSystem></Instance><Instance Content="New" Namespace="\\CAVE-PC\root\ccm" Class="CCM_ADSiteInfo" ParentClass="CCM_ADSiteInfo"><CCM_ADSiteInfo><ADSiteName>Default-First-Site-Name</ADSiteName></CCM_ADSiteInfo></Instance><Instance Content="New" Namespace="\\CAVE-PC\root\ccm" Class="CCM_ExtNetworkAdapterConfiguration" ParentClass="CCM_ExtNetworkAdapterConfiguration"><CCM_ExtNetworkAdapterConfiguration><FQDN>cave-pc.contoso.com</FQDN></CCM_ExtNetworkAdapterConfiguration></Instance><Instance Content="New" Namespace="\\CAVE-PC\root\ccm" Class="CCM_NetworkAdapterConfiguration" ParentClass="CCM_NetworkAdapterConfiguration"><CCM_NetworkAdapterConfiguration><IPSubnet>10.6.10.0</IPSubnet><IPSubnet>254.128.0.0</IPSubnet></CCM_NetworkAdapterConfiguration></Instance><Instance Content="New" Namespace="\\CAVE-PC\root\ccm" Class="Win32_NetworkAdapterConfiguration" ParentClass="Win32_NetworkAdapterConfiguration"><Win32_NetworkAdapterConfiguration><IPAddress>10.6.10.43</IPAddress><IPAddress>fe80::d89c:e797:5954:7db1</IPAddress><Index>1</Index><MACAddress>BC:25:11:8B:02:CF</MACAddress></Win32_NetworkAdapterConfiguration></Instance></ReportBody></Report>"#;

    #[test]
    fn reads_what_public_tools_send() {
        let r = DiscoveryRecord::parse(TOOL_DDR).unwrap().unwrap();
        assert_eq!(r.client, Guid::parse_sms_id("GUID:257EC4DF-C376-43A9-BAD1-D4AA25B48A2C").unwrap());
        assert_eq!(r.netbios_name, "CAVE-PC");
        assert_eq!(r.fqdn, "cave-pc.contoso.com");
        assert_eq!(r.domain, "contoso.com");
        assert_eq!(r.ad_site, "Default-First-Site-Name");
        assert_eq!(r.subnets, ["10.6.10.0", "254.128.0.0"]);
        assert_eq!(r.ip_addresses, ["10.6.10.43", "fe80::d89c:e797:5954:7db1"]);
        assert_eq!(DiscoveryRecord::parse(&r.to_xml()).unwrap().unwrap(), r);
    }

    #[test]
    fn other_reports_and_bad_records() {
        let inventory = TOOL_DDR.replace("000000000003}", "000000000001}");
        assert_eq!(DiscoveryRecord::parse(&inventory), Ok(None));
        let no_id = TOOL_DDR.replace("GUID:257EC4DF-C376-43A9-BAD1-D4AA25B48A2C", "nobody");
        assert!(matches!(DiscoveryRecord::parse(&no_id), Err(BodyError::Bad { field: "ClientID", .. })));
        let long = TOOL_DDR.replace("CAVE-PC</NetBIOS", &format!("{}</NetBIOS", "N".repeat(64)));
        assert!(matches!(DiscoveryRecord::parse(&long), Err(BodyError::Bad { field: "NetBIOSName", .. })));
        assert_eq!(DiscoveryRecord::parse("<NotAReport/>"), Ok(None));
        assert_eq!(DiscoveryRecord::parse("<Report/>"), Ok(None));
        assert!(DiscoveryRecord::parse("<Report>").is_err());
    }
}
