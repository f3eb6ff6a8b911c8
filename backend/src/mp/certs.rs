//! The certificates the MP hands out (`.sms_aut?SITESIGNCERT`, `.sms_aut?MPCERT`): the site
//! server's signing certificate and the MP's, self-signed RSA 2048 (what a site makes), made on
//! first use and kept in the data directory (`mp/site-signing.der`, `mp/mp-signing.der`) so
//! every answer and every restart hands out the same ones. A kept file that is not an RSA
//! certificate is an error naming it, never replaced behind the operator's back. Only the
//! certificates are kept: this MP signs nothing with them.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::signing::{PublicKey, SigningKey};

/// Where the site server's signing certificate is kept, under the data directory.
pub const SITE_SIGNING: &str = "mp/site-signing.der";
/// Where the MP's signing certificate is kept, under the data directory.
pub const MP_SIGNING: &str = "mp/mp-signing.der";

/// The two certificates (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificates {
    pub site_signing: Vec<u8>,
    pub mp_signing: Vec<u8>,
}

/// The certificates of one data directory, made or loaded on first use.
#[derive(Debug)]
pub struct SiteCertificates {
    data_dir: PathBuf,
    site_code: String,
    mp_name: String,
    loaded: Mutex<Option<Arc<Certificates>>>,
}

impl SiteCertificates {
    pub fn new(data_dir: &Path, site_code: &str, mp_name: &str) -> SiteCertificates {
        SiteCertificates {
            data_dir: data_dir.to_owned(),
            site_code: site_code.to_owned(),
            mp_name: mp_name.to_owned(),
            loaded: Mutex::new(None),
        }
    }

    /// The certificates, loading or making them the first time (blocking: an RSA key takes tens
    /// of milliseconds to make).
    pub fn get(&self) -> io::Result<Arc<Certificates>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = loaded.as_ref() {
            return Ok(Arc::clone(c));
        }
        let site_name = format!("Site Server Signing Certificate ({})", self.site_code);
        let certificates = Arc::new(Certificates {
            site_signing: kept(&self.data_dir.join(SITE_SIGNING), &site_name)?,
            mp_signing: kept(&self.data_dir.join(MP_SIGNING), &self.mp_name)?,
        });
        *loaded = Some(Arc::clone(&certificates));
        Ok(certificates)
    }
}

/// The certificate at `path`, made (for `common_name`) and written durably if there is none.
fn kept(path: &Path, common_name: &str) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(der) => match PublicKey::from_certificate(&der) {
            Ok(_) => Ok(der),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not an RSA certificate ({e}); remove it to have a new one made", path.display()),
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let der = make(common_name)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir)?;
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, &der)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()?;
            Ok(der)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// A self-signed RSA 2048 certificate for `common_name`.
fn make(common_name: &str) -> io::Result<Vec<u8>> {
    let err = |e: &dyn std::fmt::Display| io::Error::other(format!("making a certificate: {e}"));
    let key = SigningKey::generate(&mut rand::rngs::SysRng, 2048).map_err(|e| err(&e))?;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der());
    let pair =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).map_err(|e| err(&e))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    Ok(params.self_signed(&pair).map_err(|e| err(&e))?.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept_and_damage_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let first = SiteCertificates::new(tmp.path(), "PS1", "SUMSTORM-MP").get().unwrap();
        assert_ne!(first.site_signing, first.mp_signing);
        PublicKey::from_certificate(&first.site_signing).unwrap();
        // Another process on the same directory (a restart) hands out the same ones.
        let again = SiteCertificates::new(tmp.path(), "PS1", "SUMSTORM-MP").get().unwrap();
        assert_eq!(again, first);
        fs::write(tmp.path().join(SITE_SIGNING), b"not a certificate").unwrap();
        let e = SiteCertificates::new(tmp.path(), "PS1", "SUMSTORM-MP").get().unwrap_err();
        assert!(e.to_string().contains("site-signing.der: not an RSA certificate"), "{e}");
    }
}
