//! One integration-test binary; each module is a scenario or a shared helper.

mod accuracy;
mod api;
mod backfill;
mod bad_input;
mod collector;
mod daemon;
mod dashboards;
mod deploy;
mod docs;
mod exposition;
mod hook;
mod line_memory;
mod live;
mod oracle;
mod otlp;
mod otlp_collector;
mod otlp_support;
mod prom;
mod read_retry;
mod restart;
mod rules;
mod stack;
mod support;
mod watch_cli;
mod watcher;
mod webhook;
