//! Which transport failures are worth another try. A connection refused or reset, or a stream
//! cut short, may pass; a certificate that fails verification, a peer that does not speak HTTP,
//! headers too large or a broken chunked body will fail the same way every time.

use std::error::Error as StdError;

/// What a transport failure means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The server's certificate was refused: a configuration problem (exit 52).
    Certificate,
    /// The peer broke the protocol (HTTP or TLS): permanent (exit 1).
    Protocol,
    /// Anything else (refused, reset, cut, DNS): worth another try.
    Temporary,
}

/// Walk the chain of causes for a TLS or HTTP protocol failure.
pub(crate) fn classify(e: &reqwest::Error) -> Kind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(kind) = classify_one(err) {
            return kind;
        }
        // `io::Error::source` skips the error it wraps: look inside it too.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(kind) = classify_one(inner) {
                return kind;
            }
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            ) {
                // A body that does not decode (a broken chunk size line, for one).
                return Kind::Protocol;
            }
        }
        current = err.source();
    }
    Kind::Temporary
}

fn classify_one(err: &(dyn StdError + 'static)) -> Option<Kind> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(match tls {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::InvalidCertRevocationList(_) => Kind::Certificate,
            _ => Kind::Protocol,
        });
    }
    if let Some(http) = err.downcast_ref::<hyper::Error>()
        && (http.is_parse() || http.is_parse_status())
    {
        return Some(Kind::Protocol);
    }
    None
}
