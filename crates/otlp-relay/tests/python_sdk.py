# Sends spans, metrics and logs through the official OpenTelemetry Python SDK exporters
# to a relay, and prints what it sent as JSON for the Rust test to find in the relay's file.
# argv: protocol (grpc | http/protobuf | http/json), base URL.
import importlib
import json
import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry._logs import SeverityNumber

protocol, base = sys.argv[1], sys.argv[2]
package = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http",
    "http/json": "opentelemetry.exporter.otlp.json.http",
}[protocol]


def exporter(module, name, signal):
    cls = getattr(importlib.import_module(f"{package}.{module}"), name)
    if protocol == "grpc":
        return cls(endpoint=base, insecure=True)
    return cls(endpoint=f"{base}/v1/{signal}")


resource = Resource.create({"service.name": f"python-{protocol}"})
sent = {"spans": [], "logs": [], "metrics": []}

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(
    SimpleSpanProcessor(exporter("trace_exporter", "OTLPSpanExporter", "traces"))
)
tracer = tracer_provider.get_tracer("relay-interop", "1.2.3")
for i in range(5):
    with tracer.start_as_current_span(f"{protocol}-span-{i}") as span:
        span.set_attribute("index", i)
        span.set_attribute("protocol", protocol)
    context = span.get_span_context()
    sent["spans"].append(
        {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
            "name": span.name,
            "start": span.start_time,
            "end": span.end_time,
            "index": i,
        }
    )
tracer_provider.shutdown()

reader = PeriodicExportingMetricReader(
    exporter("metric_exporter", "OTLPMetricExporter", "metrics"),
    export_interval_millis=3_600_000,
)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
counter = meter_provider.get_meter("relay-interop").create_counter(f"{protocol}.requests")
counter.add(7, {"route": "/a"})
counter.add(5, {"route": "/b"})
meter_provider.force_flush()
meter_provider.shutdown()
sent["metrics"].append({"name": f"{protocol}.requests", "sum": 12})

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(
    SimpleLogRecordProcessor(exporter("_log_exporter", "OTLPLogExporter", "logs"))
)
logger = logger_provider.get_logger("relay-interop")
for i in range(3):
    timestamp = 1_700_000_000_000_000_000 + i
    logger.emit(
        timestamp=timestamp,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body=f"{protocol} log {i}",
        attributes={"index": i},
    )
    sent["logs"].append({"body": f"{protocol} log {i}", "time": timestamp, "index": i})
logger_provider.shutdown()

print(json.dumps(sent))
