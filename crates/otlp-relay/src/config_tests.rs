//! The configuration file's parsing and its errors.

use super::*;

#[test]
fn an_empty_file_is_the_default_and_the_example_file_matches_it() {
    assert_eq!(
        Config::from_toml("", "x").expect("empty"),
        Config::default()
    );
    let example = include_str!("../relay.example.toml");
    assert_eq!(
        Config::from_toml(example, "relay.example.toml").expect("example"),
        Config::default()
    );
    let printed = Config::default().to_toml();
    assert_eq!(
        Config::from_toml(&printed, "printed").expect("printed"),
        Config::default()
    );
}

#[test]
fn a_file_changes_only_what_it_sets() {
    let config = Config::from_toml(
        "[receivers.grpc]\nlisten = \"127.0.0.1:9000\"\n[exporter]\nkind = \"otlp\"\n\
         [exporter.otlp]\nprotocol = \"grpc\"\nheaders = { api-key = \"k\" }\n\
         timeout = \"1.5s\"\n[pipeline]\nlinger = \"50ms\"\n",
        "relay.toml",
    )
    .expect("valid");
    assert_eq!(
        config.receivers.grpc.listen,
        Listen(Some("127.0.0.1:9000".parse().expect("address")))
    );
    assert_eq!(config.receivers.http, HttpReceiver::default());
    assert_eq!(config.exporter.kind, ExporterKind::Otlp);
    assert_eq!(config.exporter.otlp.headers["api-key"], "k");
    assert_eq!(
        config.exporter.otlp.timeout,
        Some(Interval(Duration::from_millis(1500)))
    );
    assert_eq!(config.pipeline.linger, Interval(Duration::from_millis(50)));
}

fn error(text: &str) -> ConfigError {
    Config::from_toml(text, "relay.toml").expect_err("invalid")
}

#[test]
fn errors_name_the_key_and_the_line() {
    let bad_address = error("# comment\n[receivers.grpc]\nlisten = \"nowhere\"\n");
    assert_eq!(bad_address.line, Some(3), "{bad_address}");
    assert!(bad_address.message.contains("nowhere"), "{bad_address}");
    assert!(bad_address.to_string().starts_with("relay.toml:3:"));

    let unknown = error("[pipeline]\nbatch_items = 10\nbatch_itmes = 20\n");
    assert_eq!(unknown.line, Some(3), "{unknown}");
    assert!(unknown.message.contains("batch_itmes"), "{unknown}");

    let wrong_type = error("[pipeline]\n\nbatch_items = \"many\"\n");
    assert_eq!(wrong_type.line, Some(3), "{wrong_type}");

    let no_unit = error("[pipeline]\nlinger = \"200\"\n");
    assert_eq!(no_unit.line, Some(2));
    assert!(no_unit.message.contains("unit"), "{no_unit}");

    let kind = error("[exporter]\nkind = \"carrier-pigeon\"\n");
    assert_eq!(kind.line, Some(2));

    let range = error("[pipeline]\nqueue_items = 10\nbatch_items = 100\n");
    assert_eq!(range.line, Some(2), "{range}");
    assert_eq!(
        range.key.as_deref(),
        Some("pipeline.queue_items"),
        "{range}"
    );
    assert!(
        range
            .to_string()
            .starts_with("relay.toml:2: pipeline.queue_items: ")
    );

    let budget = error("[receivers]\nmemory_budget_bytes = 1000\nmax_request_bytes = 2000\n");
    assert_eq!(budget.line, Some(3), "{budget}");
    assert!(budget.message.contains("never be taken"), "{budget}");

    let clash = error("[admin]\nlisten = \"127.0.0.1:4317\"\n");
    assert!(clash.message.contains("receivers.grpc.listen"), "{clash}");
    assert_eq!(clash.line, Some(2));

    let workers = error("[runtime]\nworkers = 100000\n");
    assert_eq!(workers.line, Some(2), "{workers}");
    assert!(workers.to_string().contains("runtime.workers"), "{workers}");

    let syntax = error("[pipeline\n");
    assert_eq!(syntax.line, Some(1));
}

#[test]
fn intervals_and_listeners_parse_and_print() {
    for (text, millis) in [
        ("200ms", 200),
        ("10s", 10_000),
        ("1.5s", 1500),
        ("2m", 120_000),
    ] {
        let interval = Interval::parse(text).expect(text);
        assert_eq!(interval.0, Duration::from_millis(millis));
        assert_eq!(Interval::parse(&interval.to_string()), Ok(interval));
    }
    assert!(Interval::parse("-1s").is_err());
    assert!(Interval::parse("fast").is_err());
    assert_eq!(Listen::parse("off"), Ok(Listen::OFF));
    assert!(Listen::parse("localhost").is_err());
}
