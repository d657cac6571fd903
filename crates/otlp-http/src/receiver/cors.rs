//! Cross-origin access for browsers: which origins may post telemetry, the preflight
//! answer, and the headers added to actual responses.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// Which browser origins may send to the receiver. None by default: without an allowed
/// origin no CORS header is sent and browsers refuse cross-origin posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins (`https://app.example.com`), or `*` for any.
    pub allowed_origins: Vec<String>,
    /// Request headers a page may send besides the CORS-safelisted ones.
    pub allowed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

impl Default for Cors {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_headers: ["content-type", "content-encoding", "authorization"]
                .map(String::from)
                .to_vec(),
            max_age: Duration::from_secs(7200),
        }
    }
}

impl Cors {
    /// Allows these origins (`*` allows any).
    pub fn allow_origins<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed_origins: origins.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    pub(crate) fn allow(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }

    /// The answer to an `OPTIONS` preflight: 204 with the allowances when the origin is
    /// allowed, 403 otherwise.
    pub(crate) fn preflight<B: Default>(&self, headers: &HeaderMap) -> Response<B> {
        let mut response = Response::new(B::default());
        let Some(origin) = self.allow(headers) else {
            *response.status_mut() = StatusCode::FORBIDDEN;
            return response;
        };
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        if let Ok(allowed) = HeaderValue::from_str(&self.allowed_headers.join(", ")) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age.as_secs()),
        );
        response
    }

    /// Adds the headers an allowed cross-origin response carries.
    pub(crate) fn decorate<B>(&self, origin: HeaderValue, response: &mut Response<B>) {
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        out.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("origin"),
        );
        headers
    }

    #[test]
    fn only_allowed_origins_get_through() {
        let cors = Cors::allow_origins(["https://a.example"]);
        assert!(cors.allow(&with_origin("https://a.example")).is_some());
        assert!(cors.allow(&with_origin("https://b.example")).is_none());
        assert!(cors.allow(&HeaderMap::new()).is_none());
        assert!(
            Cors::default()
                .allow(&with_origin("https://a.example"))
                .is_none()
        );
        assert!(
            Cors::allow_origins(["*"])
                .allow(&with_origin("http://x"))
                .is_some()
        );
        let ok: Response<()> = cors.preflight(&with_origin("https://a.example"));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.example"
        );
        let refused: Response<()> = cors.preflight(&with_origin("https://b.example"));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
}
