"""Produce OTLP/JSON with the official Python SDK's JSON encoder, or read ours back.

Usage:
  python_json.py produce      -> three lines: traces, metrics, logs requests as OTLP/JSON
  python_json.py consume KIND -> reads OTLP/JSON of KIND (traces|metrics|logs) on stdin with
                                 the official JSON classes, prints item counts as JSON
"""
import json
import sys

from opentelemetry.exporter.otlp.json.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.json.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans


def produce():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode, Link

    resource = Resource.create({"service.name": "python-interop", "service.version": "1.2.3"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("interop.tracer", "0.1")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("http.request.method", "GET")
        parent.set_attribute("http.response.status_code", 200)
        parent.set_attribute("ratio", 0.25)
        parent.set_attribute("cached", True)
        parent.set_attribute("tags", ["a", "b"])
        parent.add_event("cache miss", {"key": "user:42"})
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT,
                                          links=[Link(parent.get_span_context(), {"why": "test"})]) as child:
            child.set_status(Status(StatusCode.ERROR, "upstream timeout"))
    print(encode_spans(spans.get_finished_spans()).to_json())

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    reader = InMemoryMetricReader()
    meter = MeterProvider(resource=resource, metric_readers=[reader]).get_meter("interop.meter")
    meter.create_counter("requests", unit="1").add(5, {"route": "/a"})
    meter.create_up_down_counter("queue.length").add(-3)
    meter.create_histogram("latency", unit="ms").record(12.5, {"route": "/a"})
    meter.create_gauge("temperature").set(21.5)
    print(encode_metrics(reader.get_metrics_data()).to_json())

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor, InMemoryLogRecordExporter
    import logging
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    from opentelemetry.sdk._logs import LoggingHandler
    logger = logging.getLogger("interop.logger")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    logger.setLevel(logging.INFO)
    logger.warning("disk almost full", extra={"disk.free_bytes": 1024})
    logger.error("request failed")
    logger_provider.force_flush()
    print(encode_logs(logs.get_finished_logs()).to_json())


def consume(kind):
    data = sys.stdin.read()
    if kind == "traces":
        from opentelemetry.proto_json.collector.trace.v1.trace_service import ExportTraceServiceRequest as R
        request = R.from_json(data)
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        names = sorted(s.name for r in request.resource_spans for ss in r.scope_spans for s in ss.spans)
    elif kind == "metrics":
        from opentelemetry.proto_json.collector.metrics.v1.metrics_service import ExportMetricsServiceRequest as R
        request = R.from_json(data)
        metrics = [m for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics]
        count = len(metrics)
        names = sorted(m.name for m in metrics)
    else:
        from opentelemetry.proto_json.collector.logs.v1.logs_service import ExportLogsServiceRequest as R
        request = R.from_json(data)
        records = [l for r in request.resource_logs for s in r.scope_logs for l in s.log_records]
        count = len(records)
        names = sorted(l.severity_text for l in records)
    print(json.dumps({"count": count, "names": names}))


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        produce()
    else:
        consume(sys.argv[2])
