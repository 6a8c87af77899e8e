//! trustgate: a verifying pull-through registry proxy.
//!
//! Modules follow the request path (see `docs/architecture.md`): `oci` parses what clients ask
//! for, `policy` decides what a rule requires, `trust` verifies signatures, and the content and
//! upstream layers fetch and cache what was verified.

pub mod auth;
pub mod body;
pub mod cache;
pub mod cli;
pub mod config;
pub mod http_client;
pub mod metrics;
pub mod oci;
pub mod policy;
pub mod proxy;
pub mod records;
pub mod server;
pub mod storage;
pub mod trust;
pub mod upstream;
