//! [`Pki`]: a throwaway certificate authority for TLS tests, made with
//! rcgen in a temp dir: `ca.pem`, a certificate for `127.0.0.1` and
//! `localhost` usable as server and as client (`server.pem`, `server.key`:
//! a member's client and peer certificate, as etcd's peer certificates are
//! both), and a client-only certificate (`client.pem`, `client.key`).

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

use crate::HarnessError;

/// The PEM files; removed on drop.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

fn setup(what: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Setup(format!("{what}: {e}"))
}

impl Pki {
    /// Makes the CA and both certificates.
    pub fn new() -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(|e| HarnessError::io("create temp dir", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| setup("CA", e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rollcall test CA");
        let ca_key = KeyPair::generate().map_err(|e| setup("CA key", e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| setup("CA", e))?;

        let server_key = KeyPair::generate().map_err(|e| setup("server key", e))?;
        let mut server = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| setup("server", e))?;
        server
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server_cert = server
            .signed_by(&server_key, &ca)
            .map_err(|e| setup("server", e))?;

        let client_key = KeyPair::generate().map_err(|e| setup("client key", e))?;
        let mut client =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| setup("client", e))?;
        client.distinguished_name.push(DnType::CommonName, "client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &ca)
            .map_err(|e| setup("client", e))?;

        for (name, text) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_cert.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client_cert.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        }
        Ok(Self { dir })
    }

    /// The path of one of the files (`ca.pem`, `server.pem`, ...).
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
