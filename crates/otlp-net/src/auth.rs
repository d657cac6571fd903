//! The authentication hook: decides on a request from its headers alone, before any of its
//! body is read or decompressed, so that an unauthenticated peer costs no more than a header
//! parse.

use std::fmt;

use http::request::Parts;
use otlp_core::{ErrorKind, ExportError};

/// Decides whether a request may proceed, from its method, path and headers.
///
/// Return `Err` with [`ErrorKind::Unauthenticated`] (gRPC `UNAUTHENTICATED`, HTTP 401) when
/// credentials are missing or wrong, or [`ErrorKind::PermissionDenied`] (`PERMISSION_DENIED`,
/// 403) when they are valid but not allowed. Implemented for closures.
///
/// ```
/// use otlp_net::auth::{Authenticate, BearerToken};
///
/// let auth = BearerToken::new("s3cret");
/// let request = http::Request::post("/").header("authorization", "Bearer s3cret").body(())?;
/// assert!(auth.authenticate(&request.into_parts().0).is_ok());
/// let request = http::Request::post("/").header("authorization", "Bearer nope").body(())?;
/// assert!(auth.authenticate(&request.into_parts().0).is_err());
/// # Ok::<(), http::Error>(())
/// ```
pub trait Authenticate: Send + Sync + 'static {
    /// `Ok` to let the request through.
    fn authenticate(&self, request: &Parts) -> Result<(), ExportError>;
}

impl<F> Authenticate for F
where
    F: Fn(&Parts) -> Result<(), ExportError> + Send + Sync + 'static,
{
    fn authenticate(&self, request: &Parts) -> Result<(), ExportError> {
        self(request)
    }
}

/// Requires `authorization: Bearer <token>` with one of the configured tokens.
#[derive(Clone)]
pub struct BearerToken {
    tokens: Vec<String>,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secrets.
        f.debug_struct("BearerToken")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl BearerToken {
    /// Accepts exactly `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            tokens: vec![token.into()],
        }
    }

    /// Also accepts `token` (for rotating tokens without downtime).
    pub fn or(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }
}

impl Authenticate for BearerToken {
    fn authenticate(&self, request: &Parts) -> Result<(), ExportError> {
        let presented = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented {
            None => Err(ExportError::new(
                ErrorKind::Unauthenticated,
                "missing bearer token",
            )),
            Some(token) if self.tokens.iter().any(|t| constant_time_eq(t, token)) => Ok(()),
            Some(_) => Err(ExportError::new(
                ErrorKind::Unauthenticated,
                "invalid bearer token",
            )),
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess
/// was right.
fn constant_time_eq(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(i).copied().unwrap_or(0));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut builder = http::Request::post("/x");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        let auth = BearerToken::new("abc").or("next");
        assert!(auth.authenticate(&parts(Some("Bearer abc"))).is_ok());
        assert!(auth.authenticate(&parts(Some("bearer next"))).is_ok());
        for bad in [
            None,
            Some("Bearer ab"),
            Some("Bearer abcd"),
            Some("Basic abc"),
            Some("abc"),
        ] {
            let error = auth.authenticate(&parts(bad)).expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_tokens() {
        assert!(!format!("{:?}", BearerToken::new("hidden")).contains("hidden"));
    }
}
