//! One integration-test binary; each module is a scenario or a shared helper.

mod accuracy;
mod daemon;
mod docs;
mod live;
mod oracle;
mod support;
