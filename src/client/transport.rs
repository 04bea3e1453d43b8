//! Which transport failures are worth another try. A connection refused or reset, or a stream
//! cut short, may pass (and say the server is busy); a certificate that fails verification, a peer that does not speak HTTP,
//! headers too large, a broken chunked body or an HTTP/2 protocol violation will fail the same way
//! every time.

use std::error::Error as StdError;

/// What a transport failure means for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The server's certificate was refused: a configuration problem (exit 52).
    Certificate,
    /// The peer broke the protocol (HTTP or TLS): permanent (exit 1).
    Protocol,
    /// The server refused or reset the connection, or closed it before answering in full: a
    /// busy or restarting server, worth another try and a sign of congestion.
    Dropped,
    /// Anything else (DNS, a timeout of the connection): worth another try.
    Temporary,
}

/// Walk the chain of causes for a TLS or HTTP protocol failure. A TLS failure wins over what
/// wraps it; an I/O error that says the data was invalid (a broken chunk size line) is a
/// protocol failure when nothing more precise is found.
pub(crate) fn classify(e: &reqwest::Error) -> Kind {
    let mut invalid_data = false;
    let mut dropped = false;
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(kind) = classify_one(err) {
            return kind;
        }
        dropped |= err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message);
        current = match err.downcast_ref::<std::io::Error>() {
            // `io::Error::source` skips the error it wraps: step into it instead.
            Some(io) => {
                invalid_data |= matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                );
                dropped |= matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::UnexpectedEof
                );
                match io.get_ref() {
                    Some(inner) => Some(inner),
                    None => io.source(),
                }
            }
            None => err.source(),
        };
    }
    if invalid_data {
        Kind::Protocol
    } else if dropped {
        Kind::Dropped
    } else {
        Kind::Temporary
    }
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
    if let Some(h2) = err.downcast_ref::<h2::Error>() {
        // A violation we detected in what the peer sent is permanent; a reset or GOAWAY the
        // peer chose to send (it may be restarting) is not.
        let violation = h2.is_library()
            && h2.reason().is_some_and(|r| {
                matches!(
                    r,
                    h2::Reason::PROTOCOL_ERROR
                        | h2::Reason::FRAME_SIZE_ERROR
                        | h2::Reason::COMPRESSION_ERROR
                        | h2::Reason::FLOW_CONTROL_ERROR
                )
            });
        return Some(if violation {
            Kind::Protocol
        } else {
            Kind::Temporary
        });
    }
    if let Some(http) = err.downcast_ref::<hyper::Error>()
        && (http.is_parse() || http.is_parse_status())
    {
        return Some(Kind::Protocol);
    }
    None
}
