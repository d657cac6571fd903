//! Conformance and interop suites live in `tests/`; this library is empty.
