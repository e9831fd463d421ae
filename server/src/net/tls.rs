//! TLS for the client listener with rustls (etcd's `--cert-file`,
//! `--key-file`, `--trusted-ca-file`, `--client-cert-auth`). With
//! client-cert-auth a client must present a certificate signed by the
//! trusted CA, or the handshake fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trusted_ca: Option<PathBuf>,
    pub client_cert_auth: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("--client-cert-auth needs --trusted-ca-file")]
    NoTrustedCa,
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(file_error(path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error(path))?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.to_path_buf(),
            reason: "no certificate in file".into(),
        });
    }
    Ok(certs)
}

/// Builds the acceptor; HTTP/2 is negotiated through ALPN as gRPC requires.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if files.client_cert_auth {
        let ca = files.trusted_ca.as_deref().ok_or(TlsError::NoTrustedCa)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(ca)? {
            roots.add(cert).map_err(|e| TlsError::File {
                path: ca.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(file_error(&files.key))?;
    let mut config = builder
        .with_single_cert(certificates(&files.cert)?, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
