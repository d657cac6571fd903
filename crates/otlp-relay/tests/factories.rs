//! A transport the relay does not know plugs in through a registered factory: its
//! protocol name selects it, it receives the resolved settings (its default endpoint
//! filled in), and the exporter it builds is the one the relay gets. Unknown protocols
//! name every registered one.

use std::sync::{Arc, Mutex};

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, SignalKind, Traces};
use otlp_relay::config::{ConfigError, OtlpExporter};
use otlp_relay::factories::{UpstreamFactory, Upstreams, boxed};
use otlp_relay::pipeline::Exporter;
use otlp_relay::upstream::UpstreamSettings;
use tower::ServiceExt;

/// A factory for `test/recording`: its exporter records the endpoint it was built for and
/// the items it was handed.
#[derive(Clone, Default)]
struct Recording {
    seen: Arc<Mutex<Vec<(String, usize)>>>,
}

impl UpstreamFactory for Recording {
    fn protocols(&self) -> &'static [&'static str] {
        &["test/recording"]
    }

    fn default_endpoint(&self, _: &str) -> &'static str {
        "recording://default"
    }

    fn build(&self, settings: &UpstreamSettings) -> Result<Exporter, ConfigError> {
        let seen = self.seen.clone();
        let endpoint = settings.endpoint.clone().unwrap_or_default();
        Ok(boxed(tower::service_fn(
            move |request: AnyExportRequest| {
                let items = request.item_count();
                seen.lock().expect("lock").push((endpoint.clone(), items));
                async move { Ok::<_, ExportError>(ExportOutcome::success(items)) }
            },
        )))
    }
}

#[tokio::test]
async fn a_registered_factory_is_chosen_by_its_protocol_name() {
    let factory = Recording::default();
    let upstreams = Upstreams::builtin().with(factory.clone());
    let no_env = |_: &str| None;
    let settings = OtlpExporter {
        protocol: Some("test/recording".into()),
        ..OtlpExporter::default()
    };
    let exporter = upstreams
        .build(&settings, SignalKind::Traces, &no_env)
        .expect("built by the factory");
    let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(7, 1));
    let outcome = exporter.oneshot(request).await.expect("exported");
    assert_eq!(outcome.accepted(), 7);
    assert_eq!(
        factory.seen.lock().expect("lock").as_slice(),
        [("recording://default".to_string(), 7)]
    );

    // The built-in protocols are still there, and an unknown one names them all.
    let unknown = OtlpExporter {
        protocol: Some("carrier-pigeon".into()),
        ..OtlpExporter::default()
    };
    let Err(error) = upstreams.build(&unknown, SignalKind::Traces, &no_env) else {
        panic!("an unknown protocol is refused");
    };
    assert_eq!(error.key.as_deref(), Some("exporter.otlp.protocol"));
    for protocol in ["test/recording", "grpc", "http/json", "websocket"] {
        assert!(error.message.contains(protocol), "{error}");
    }
}
