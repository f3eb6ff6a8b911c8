//! The `.sms_aut` answers besides the MP list, in the shapes public tools read from real MPs:
//! `MPKEYINFORMATION` (`<MPKEYINFORMATION>` with the MP's `FQDN` and the `SITECODE`),
//! `MPKEYINFORMATIONMEDIA` (the same, with the site's unknown-computer GUIDs in
//! `<UnknownMachines x86UnknownMachineGUID=".." x64UnknownMachineGUID=".."/>`, what boot media
//! uses as its client ID), and `SITESIGNCERT` (`<X509Certificate>` holding the DER certificate in
//! hex). A real MP's key information also carries its keys; the tools we learned the shapes from
//! read only these elements, and this MP writes only these.

use super::{BodyError, bad, root};
use crate::xml::XmlWriter;
use crate::{Guid, GuidStyle};

/// The site's "x86 Unknown Computer" and "x64 Unknown Computer" resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnknownMachines {
    pub x86: Guid,
    pub x64: Guid,
}

/// `GET /SMS_MP/.sms_aut?MPKEYINFORMATION` (and `...MEDIA`, with the unknown computers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MpKeyInformation {
    pub fqdn: String,
    pub site_code: String,
    pub unknown_machines: Option<UnknownMachines>,
}

impl MpKeyInformation {
    pub fn parse(xml: &str) -> Result<MpKeyInformation, BodyError> {
        let e = root(xml, "MPKEYINFORMATION")?;
        let guid = |field: &'static str, value: Option<&str>| {
            let value = value.ok_or(BodyError::Missing(field))?;
            Guid::parse(value.trim().as_bytes()).map_err(|_| bad(field, value))
        };
        let unknown_machines = match e.child("UnknownMachines") {
            Some(u) => Some(UnknownMachines {
                x86: guid("x86UnknownMachineGUID", u.attr("x86UnknownMachineGUID"))?,
                x64: guid("x64UnknownMachineGUID", u.attr("x64UnknownMachineGUID"))?,
            }),
            None => None,
        };
        Ok(MpKeyInformation {
            fqdn: e.child_text("FQDN").unwrap_or_default().to_owned(),
            site_code: e.child_text("SITECODE").ok_or(BodyError::Missing("SITECODE"))?.to_owned(),
            unknown_machines,
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open("MPKEYINFORMATION", &[]).leaf("FQDN", &self.fqdn).leaf("SITECODE", &self.site_code);
        if let Some(u) = &self.unknown_machines {
            let (x86, x64) =
                (u.x86.to_string_styled(GuidStyle::Upper), u.x64.to_string_styled(GuidStyle::Upper));
            w.empty("UnknownMachines", &[("x86UnknownMachineGUID", &x86), ("x64UnknownMachineGUID", &x64)]);
        }
        w.close("MPKEYINFORMATION");
        w.finish()
    }
}

/// `GET /SMS_MP/.sms_aut?SITESIGNCERT`: a DER certificate as upper-case hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct X509CertificateReply {
    pub der: Vec<u8>,
}

impl X509CertificateReply {
    pub fn parse(xml: &str) -> Result<X509CertificateReply, BodyError> {
        let e = root(xml, "X509Certificate")?;
        let hex = e.text.trim();
        let der = crate::signing::from_hex(hex).ok_or_else(|| bad("X509Certificate", hex))?;
        Ok(X509CertificateReply { der })
    }

    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.leaf("X509Certificate", &crate::signing::to_hex(&self.der));
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_public_tools_read() {
        let info = MpKeyInformation::parse(
            "<MPKEYINFORMATION><FQDN>ps1.contoso.com</FQDN><SITECODE>PS1</SITECODE></MPKEYINFORMATION>",
        )
        .unwrap();
        assert_eq!(
            (info.fqdn.as_str(), info.site_code.as_str(), info.unknown_machines),
            ("ps1.contoso.com", "PS1", None)
        );
        let media = MpKeyInformation {
            unknown_machines: Some(UnknownMachines { x86: Guid(1), x64: Guid(2) }),
            ..info.clone()
        };
        assert_eq!(MpKeyInformation::parse(&media.to_xml()).unwrap(), media);
        assert!(media.to_xml().contains("x64UnknownMachineGUID=\"00000000-0000-0000-0000-000000000002\""));
        let cert = X509CertificateReply { der: vec![0x30, 0x82, 0x01, 0xFF] };
        assert_eq!(cert.to_xml(), "<X509Certificate>308201FF</X509Certificate>");
        assert_eq!(X509CertificateReply::parse(&cert.to_xml()).unwrap(), cert);
        assert!(X509CertificateReply::parse("<X509Certificate>ZZ</X509Certificate>").is_err());
    }
}
