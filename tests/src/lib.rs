//! Cross-crate conformance and interoperability suites live in `tests/`; this library only
//! compiles the workspace README's example as a doctest.

#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
struct WorkspaceReadmeDoctests;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
