//! A transport the relay does not know plugs in through registered factories. An upstream
//! factory: its protocol name selects it, it receives the resolved settings (its default
//! endpoint filled in), and the exporter it builds is the one the relay gets. A receiver
//! factory: the `kind` of a `[[receivers.extra]]` section selects it, it gets that
//! section's own settings, and what it receives reaches the pipeline. Unknown protocols
//! and kinds name every registered one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_core::{AnyExportRequest, ExportError, ExportOutcome, ExportRequest, SignalKind, Traces};
use otlp_relay::config::{Config, ConfigError, OtlpExporter};
use otlp_relay::factories::{UpstreamFactory, Upstreams, boxed};
use otlp_relay::pipeline::Exporter;
use otlp_relay::receivers::{
    BoxFuture, PreparedReceiver, ReceiverContext, ReceiverFactory, ReceiverKinds, StartedReceiver,
    parse_section,
};
use otlp_relay::upstream::UpstreamSettings;
use tower::ServiceExt;

mod common;

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

/// A receiver kind `test/direct`: started, it hands the pipeline one request of as many
/// spans as its `spans` setting says, and remembers the settings it was given.
#[derive(Clone, Default)]
struct Direct {
    sections: Arc<Mutex<Vec<toml::Table>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectSettings {
    spans: usize,
}

struct PreparedDirect(usize);

impl ReceiverFactory for Direct {
    fn kind(&self) -> &'static str {
        "test/direct"
    }

    fn prepare(
        &self,
        section: &toml::Table,
        key: &str,
    ) -> Result<Option<Box<dyn PreparedReceiver>>, ConfigError> {
        self.sections.lock().expect("lock").push(section.clone());
        let settings: DirectSettings = parse_section(section, key)?;
        Ok(Some(Box::new(PreparedDirect(settings.spans))))
    }
}

impl PreparedReceiver for PreparedDirect {
    fn stream_windows(&self) -> usize {
        0
    }

    fn start(
        self: Box<Self>,
        context: &ReceiverContext,
    ) -> BoxFuture<'_, Result<StartedReceiver, ConfigError>> {
        Box::pin(async move {
            let request = ExportRequest::<Traces>::new(otlp_testkit::realistic::traces(self.0, 2));
            context
                .sink
                .clone()
                .oneshot(AnyExportRequest::from(request))
                .await
                .map_err(ConfigError::value)?;
            Ok(StartedReceiver::new(vec!["direct".into()], |_| async {
                true
            }))
        })
    }
}

fn config(text: &str) -> Config {
    Config::from_toml(text, "test.toml").expect("valid configuration")
}

#[tokio::test]
async fn a_registered_receiver_kind_is_chosen_by_the_kind_of_an_extra_section() {
    let direct = Direct::default();
    let kinds = ReceiverKinds::builtin().with(direct.clone());
    let config = config(
        "[receivers.grpc]\nlisten = \"off\"\n[receivers.http]\nlisten = \"off\"\n\
         [[receivers.extra]]\nkind = \"test/direct\"\nspans = 5\n",
    );
    let prepared = kinds.prepare(&config.receivers).expect("prepared");
    assert_eq!(prepared.len(), 1, "the built-in receivers are off");
    // The factory gets its own settings, without `kind`.
    let sections = direct.sections.lock().expect("lock").clone();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0].get("spans"), Some(&toml::Value::Integer(5)));
    assert!(sections[0].get("kind").is_none());

    let recording = Recording::default();
    let exporter = Upstreams::builtin()
        .with(recording.clone())
        .build(
            &OtlpExporter {
                protocol: Some("test/recording".into()),
                ..OtlpExporter::default()
            },
            SignalKind::Traces,
            &|_: &str| None,
        )
        .expect("exporter");
    let pipelines = otlp_relay::pipeline::build(
        [exporter.clone(), exporter.clone(), exporter],
        &config.pipeline,
        None,
    );
    let context = ReceiverContext {
        sink: pipelines.entry(),
        intake: otlp_net::intake::IntakeConfig::default(),
        listener: otlp_net::listener::ListenerLimits::default(),
        auth: None,
        allowed_origins: Vec::new(),
        dedup_capacity: 16,
    };
    let mut started = Vec::new();
    for receiver in prepared {
        started.push(receiver.start(&context).await.expect("started"));
    }
    assert_eq!(started[0].listening, ["direct"]);
    for receiver in started {
        assert!(receiver.shutdown_within(Duration::from_secs(1)).await);
    }
    assert_eq!(pipelines.shutdown(Duration::from_secs(5)).await, 0);
    let seen = recording.seen.lock().expect("lock").clone();
    assert_eq!(seen.iter().map(|(_, items)| items).sum::<usize>(), 5);
}

#[test]
fn an_unknown_or_missing_receiver_kind_names_the_section_and_the_known_kinds() {
    let kinds = ReceiverKinds::builtin().with(Direct::default());
    let unknown = config("[[receivers.extra]]\nkind = \"carrier-pigeon\"\n");
    let Err(error) = kinds.prepare(&unknown.receivers) else {
        panic!("an unknown kind is refused");
    };
    assert_eq!(error.key.as_deref(), Some("receivers.extra[0].kind"));
    for kind in ["test/direct", "grpc", "http", "websocket"] {
        assert!(error.message.contains(kind), "{error}");
    }
    let missing = config("[[receivers.extra]]\nspans = 1\n");
    let Err(error) = kinds.prepare(&missing.receivers) else {
        panic!("a section without a kind is refused");
    };
    assert_eq!(error.key.as_deref(), Some("receivers.extra[0].kind"));
    // A factory's own settings are checked by it, and the error names the section.
    let bad = config("[[receivers.extra]]\nkind = \"test/direct\"\nspans = \"many\"\n");
    let Err(error) = kinds.prepare(&bad.receivers) else {
        panic!("a bad setting is refused");
    };
    assert_eq!(error.key.as_deref(), Some("receivers.extra[0]"));
    // An extra built-in receiver names its own address (the default is the built-in's).
    let no_address = config("[[receivers.extra]]\nkind = \"grpc\"\n");
    let Err(error) = kinds.prepare(&no_address.receivers) else {
        panic!("an extra gRPC receiver without an address is refused");
    };
    assert_eq!(error.key.as_deref(), Some("receivers.extra[0].listen"));
}

/// The binary: a second gRPC listener from an extra section of kind `grpc`, beside the
/// built-in one; both hand what they receive to the same pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_runs_a_second_grpc_receiver_from_an_extra_section() {
    let output = common::temp_file("extra.jsonl");
    let path = common::temp_file("extra.toml");
    std::fs::write(
        &path,
        format!(
            "[[receivers.extra]]\nkind = \"grpc\"\nlisten = \"127.0.0.1:0\"\n\
             [exporter.file]\npath = {:?}\n",
            output.display().to_string()
        ),
    )
    .expect("write");
    let relay = common::start_relay(&["--config", &path.display().to_string()], &[]);
    for nth in 0..2 {
        let url = format!("http://{}", relay.banner_address("gRPC ", nth));
        otlp_grpc::GrpcExporter::new(otlp_grpc::ExporterConfig::new(&url).expect("config"))
            .expect("exporter")
            .export(&ExportRequest::<Traces>::new(
                otlp_testkit::realistic::traces(3, nth as u64),
            ))
            .await
            .expect("exported");
    }
    let report = common::stop(relay);
    assert!(report.contains("6 items in, 6 sent"), "{report}");
    let _ = std::fs::remove_file(output);
    let _ = std::fs::remove_file(path);
}
