//! Server and metrics integration tests, in one binary so the crate links once.

mod admin;
mod listener;
mod metrics;
mod stack;
mod support;
