//! HTTPS and `wss://` served by the server itself, for an operator without a reverse
//! proxy: `--tls-cert` and `--tls-key` (PEM files), a rustls `ServerConfig` made once,
//! and the certificate it presents swappable while the server runs.
//!
//! Certificates are renewed (Let's Encrypt every 60–90 days), so a new pair must take
//! effect without a restart, which would close every chat socket. The `ServerConfig`
//! asks a [`ResolvesServerCert`] for the certificate at each handshake; ours,
//! [`Certificates`], hands out the pair it holds, and a reload puts a new one in its
//! place. Connections already open keep the session they negotiated: nothing about
//! them changes. A reload happens on SIGHUP (what `systemctl reload` and certbot's
//! deploy hooks send) and when the files' modification time or size changes (a look
//! every `--tls-watch-secs`, see [`keep_fresh`]). A pair that does not load (not PEM,
//! no certificate, a key that is not the certificate's, a file half written) is
//! refused with an error in the log, and the pair in use stays.
//!
//! The crypto provider is *ring*, chosen explicitly rather than as a process default:
//! it builds with the C compiler the bundled SQLite already needs, where aws-lc-rs
//! wants CMake or more, and naming it keeps a dependency that enables another provider
//! from making rustls refuse to pick one at run time.

mod redirect;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use redirect::{Redirect, router as redirect_router};

/// The two files a certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, the server's own certificate first (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`--tls-key`).
    pub key: PathBuf,
}

/// Why a certificate and key could not be used. Each message says all there is (the
/// cause is in it, not chained behind it), since it goes to the log as it is.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is not a PEM file of certificates: {error}", path.display())]
    BadCertificates {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error("{} holds no certificate (a PEM `BEGIN CERTIFICATE` block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no private key in PEM: {error}", path.display())]
    NoKey {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    #[error(
        "the key in {} cannot serve the certificate in {}: {error}",
        files.key.display(),
        files.cert.display()
    )]
    Mismatch {
        files: CertFiles,
        error: rustls::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// The crypto every TLS handshake uses (see the module docs).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes a certified key of a PEM chain and a PEM key, checking that the key is the
/// one the chain's first certificate was issued for.
fn certified_key(
    files: &CertFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::BadCertificates {
            path: files.cert.clone(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| TlsError::NoKey {
        path: files.key.clone(),
        error,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Mismatch {
        files: files.clone(),
        error,
    })
}

/// SHA-256 of the server's own certificate in the form `openssl x509 -fingerprint
/// -sha256` prints, so an operator can tell from the log which one is served.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What a file looked like the last time it was read: a change in either means the
/// pair is loaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    /// Follows symbolic links: certbot's `live/` names and Kubernetes' secret mounts
    /// swap a link to new files, which leaves the link's own time as it was.
    async fn of(path: &Path) -> Option<Self> {
        let meta = tokio::fs::metadata(path).await.ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// The certificate the server presents, swappable while it runs.
pub struct Certificates {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .field("serving", &self.serving())
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the pair a first time: without it the server cannot start.
    pub async fn load(files: CertFiles) -> Result<Self, TlsError> {
        let provider = provider();
        let key = read(&files, &provider).await?;
        Ok(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again and, if they make a usable pair, serves it to every
    /// handshake from now on; otherwise keeps the one in use. Returns the new one's
    /// fingerprint.
    pub async fn reload(&self) -> Result<String, TlsError> {
        let key = Arc::new(read(&self.files, &self.provider).await?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(self.serving())
    }

    /// The fingerprint of the certificate served now.
    pub fn serving(&self) -> String {
        let current = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        current
            .end_entity_cert()
            .map_or_else(|_| "none".to_owned(), fingerprint)
    }

    /// A TLS acceptor for HTTP/1.1 whose every handshake gets the pair held then.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        // HTTP/1.1 is all the server speaks (WebSockets ride on it); saying so keeps a
        // browser from choosing h2 when both were offered.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

async fn read(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        let path = path.to_owned();
        async move {
            tokio::fs::read(&path)
                .await
                .map_err(|error| TlsError::Read { path, error })
        }
    };
    let cert = read(&files.cert).await?;
    let key = read(&files.key).await?;
    certified_key(files, &cert, &key, provider)
}

/// SIGHUP, where there is such a thing.
struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    /// From here on SIGHUP is received here instead of ending the process.
    fn listen() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        })
    }

    /// The next SIGHUP; `None` once no more can come.
    async fn recv(&mut self) -> Option<()> {
        #[cfg(unix)]
        return self.signal.recv().await;
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

async fn stamps(files: &CertFiles) -> (Option<Stamp>, Option<Stamp>) {
    (Stamp::of(&files.cert).await, Stamp::of(&files.key).await)
}

/// Starts listening for SIGHUP now (from here on the signal reloads instead of ending
/// the process) and returns the task that reloads `certificates` on it and, every
/// `watch` (none: never), when a file changed, until `stop`.
pub fn keep_fresh(
    certificates: Arc<Certificates>,
    watch: Option<Duration>,
    stop: CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut hangup = Hangup::listen()?;
    Ok(async move {
        let files = certificates.files.clone();
        let mut seen = stamps(&files).await;
        let mut every = watch.map(|every| {
            let mut every = tokio::time::interval(every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        loop {
            let cause = tokio::select! {
                () = stop.cancelled() => return,
                signal = hangup.recv() => match signal {
                    Some(()) => "SIGHUP",
                    None => return,
                },
                _ = async {
                    match every.as_mut() {
                        Some(every) => every.tick().await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Stamped before reading: a write landing between the two is seen
                    // as a change next time, not lost.
                    let now = stamps(&files).await;
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "a change of the files"
                }
            };
            match certificates.reload().await {
                Ok(fingerprint) => tracing::info!(
                    %fingerprint,
                    "TLS certificate loaded again after {cause}: new connections get it"
                ),
                Err(e) => tracing::error!(
                    serving = %certificates.serving(),
                    "cannot use the TLS certificate after {cause}, keeping the one in use: {e}"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> CertFiles {
        CertFiles {
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        }
    }

    /// A self-signed certificate for localhost and its key, in PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn fingerprints_read_like_openssl() {
        let der = CertificateDer::from(vec![0u8, 1, 2]);
        let f = fingerprint(&der);
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(f.starts_with("AE:4B:32:80"), "{f}");
    }

    #[test]
    fn a_pair_loads() {
        let (cert, key) = pair();
        let loaded =
            certified_key(&files(), cert.as_bytes(), key.as_bytes(), &provider()).expect("loads");
        assert_eq!(loaded.cert.len(), 1);
    }

    #[test]
    fn garbage_is_refused_with_the_file_named() {
        let p = provider();
        let (cert, _) = pair();
        let err = certified_key(&files(), b"not pem at all", b"", &p).expect_err("garbage");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("cert.pem"), "{err}");
        let err =
            certified_key(&files(), cert.as_bytes(), b"nothing here", &p).expect_err("no key");
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = certified_key(&files(), cert.as_bytes(), other_key.as_bytes(), &provider())
            .expect_err("mismatch");
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    }
}
