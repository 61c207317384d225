//! One integration-test binary; each module is a scenario or a shared helper.

mod accuracy;
mod oracle;
mod support;
