//! A set of algorithms, looked up by protocol name, advertised and negotiated.

use std::sync::Arc;

use crate::Compression;

/// The algorithms a transport accepts and may use, in order of preference.
///
/// ```
/// use otlp_compression::CompressionSet;
///
/// let set = CompressionSet::with_defaults();
/// // What a gRPC receiver advertises:
/// println!("grpc-accept-encoding: {}", set.grpc_accept_encoding());
/// // What an HTTP exporter picks from a server's Accept-Encoding:
/// let chosen = set.negotiate_http("br;q=1.0, gzip;q=0.8, *;q=0");
/// assert_eq!(chosen.map(|c| c.name().to_string()), Some("gzip".to_string()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CompressionSet {
    algorithms: Vec<Arc<dyn Compression>>,
}

impl CompressionSet {
    /// An empty set: only `identity`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every algorithm compiled in, at default levels, in this order of preference:
    /// zstd, gzip, deflate, lz4, snappy (framed), snappy (block).
    pub fn with_defaults() -> Self {
        #[allow(unused_mut)]
        let mut set = Self::new();
        #[cfg(feature = "zstd")]
        {
            set = set.with(crate::Zstd::default());
        }
        #[cfg(feature = "gzip")]
        {
            set = set.with(crate::Gzip::default());
        }
        #[cfg(feature = "deflate")]
        {
            set = set.with(crate::Zlib::default());
        }
        #[cfg(feature = "lz4")]
        {
            set = set.with(crate::Lz4);
        }
        #[cfg(feature = "snappy")]
        {
            set = set.with(crate::SnappyFramed).with(crate::SnappyBlock);
        }
        set
    }

    /// Adds an algorithm (last in preference). An algorithm with the same name replaces the
    /// one already there, keeping its place.
    pub fn with(mut self, algorithm: impl Compression) -> Self {
        self.insert(Arc::new(algorithm));
        self
    }

    /// Adds a shared algorithm; see [`CompressionSet::with`].
    pub fn insert(&mut self, algorithm: Arc<dyn Compression>) {
        match self
            .algorithms
            .iter_mut()
            .find(|a| a.name() == algorithm.name())
        {
            Some(slot) => *slot = algorithm,
            None => self.algorithms.push(algorithm),
        }
    }

    /// The algorithms, in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Compression>> {
        self.algorithms.iter()
    }

    /// The algorithm with this canonical name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Compression>> {
        self.algorithms
            .iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The algorithm for a `Content-Encoding` token (case-insensitive, aliases included).
    pub fn by_http_name(&self, token: &str) -> Option<&Arc<dyn Compression>> {
        let token = token.trim();
        self.algorithms.iter().find(|a| {
            a.http_name().is_some_and(|n| n.eq_ignore_ascii_case(token))
                || a.http_aliases()
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(token))
        })
    }

    /// The algorithm for a `grpc-encoding` token.
    pub fn by_grpc_name(&self, token: &str) -> Option<&Arc<dyn Compression>> {
        let token = token.trim();
        self.algorithms
            .iter()
            .find(|a| a.grpc_name().is_some_and(|n| n.eq_ignore_ascii_case(token)))
    }

    /// The `grpc-accept-encoding` value: every gRPC name, then `identity`.
    pub fn grpc_accept_encoding(&self) -> String {
        let mut names: Vec<&str> = self
            .algorithms
            .iter()
            .filter_map(|a| a.grpc_name())
            .collect();
        names.push("identity");
        names.join(",")
    }

    /// The `Accept-Encoding` value: every HTTP name, then `identity`.
    pub fn http_accept_encoding(&self) -> String {
        let mut names: Vec<&str> = self
            .algorithms
            .iter()
            .filter_map(|a| a.http_name())
            .collect();
        names.push("identity");
        names.join(", ")
    }

    /// Our most preferred algorithm that the peer's `Accept-Encoding` allows (q > 0,
    /// explicitly or through `*`), or `None` for identity.
    pub fn negotiate_http(&self, accept_encoding: &str) -> Option<&Arc<dyn Compression>> {
        let accepted = parse_accept_list(accept_encoding);
        self.algorithms.iter().find(|a| {
            a.http_name().is_some_and(|name| {
                let names = std::iter::once(name).chain(a.http_aliases().iter().copied());
                allows(&accepted, names)
            })
        })
    }

    /// Our most preferred algorithm listed in the peer's `grpc-accept-encoding`, or `None`.
    pub fn negotiate_grpc(&self, grpc_accept_encoding: &str) -> Option<&Arc<dyn Compression>> {
        let accepted = parse_accept_list(grpc_accept_encoding);
        self.algorithms.iter().find(|a| {
            a.grpc_name()
                .is_some_and(|name| allows(&accepted, std::iter::once(name)))
        })
    }
}

/// Whether the parsed accept list allows any of `names`: an explicit entry decides (q > 0);
/// otherwise a `*` entry does.
fn allows<'a>(accepted: &[(String, f32)], names: impl Iterator<Item = &'a str> + Clone) -> bool {
    let explicit = accepted
        .iter()
        .find(|(token, _)| names.clone().any(|n| n.eq_ignore_ascii_case(token)));
    match explicit {
        Some((_, q)) => *q > 0.0,
        None => accepted.iter().any(|(token, q)| token == "*" && *q > 0.0),
    }
}

/// Parses an `Accept-Encoding` or `grpc-accept-encoding` list into lower-cased tokens with
/// their quality (1.0 when absent; malformed qualities count as 0, which refuses the
/// token rather than guessing).
///
/// ```
/// use otlp_compression::parse_accept_list;
/// assert_eq!(
///     parse_accept_list("gzip;q=0.5, ZSTD, identity;q=0"),
///     vec![("gzip".into(), 0.5), ("zstd".into(), 1.0), ("identity".into(), 0.0)]
/// );
/// ```
pub fn parse_accept_list(list: &str) -> Vec<(String, f32)> {
    list.split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(';');
            let token = parts.next()?.trim().to_ascii_lowercase();
            if token.is_empty() {
                return None;
            }
            let mut quality = 1.0;
            for param in parts {
                if let Some((key, value)) = param.split_once('=')
                    && key.trim().eq_ignore_ascii_case("q")
                {
                    quality = value
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
            Some((token, quality))
        })
        .collect()
}
