//! One integration-test binary; each module is a scenario or a shared helper.

mod accuracy;
mod backfill;
mod bad_input;
mod daemon;
mod docs;
mod exposition;
mod live;
mod oracle;
mod prom;
mod restart;
mod rules;
mod support;
