//! The HTTP server: listeners, the tower stack around the proxy handler, the admin endpoints
//! and logging setup.
//!
//! A request's life, and which file handles each step:
//!
//! ```text
//! accept (listener.rs)            TCP accept, TCP_NODELAY, one task per connection
//!   TLS handshake (tls.rs)        optional; ALPN h2, http/1.1; bounded by the header timeout
//!   protocol (hyper-util auto)    HTTP/1.1 or h2 by preface; the first request must arrive
//!                                 within the header timeout (slowloris)
//!   stack (stack.rs)              request id -> trace -> metrics -> catch panic -> errors
//!                                 -> timeout -> concurrency limit -> handler
//!   handler (crate::proxy)        route, policy, trust, content, upstream
//!   response body                 streams after the timeout; holds its concurrency permit
//! shutdown (listener.rs)          stop accepting, drain in-flight requests for the grace
//!                                 period, abort the rest
//! ```
//!
//! The admin listener (`admin.rs`) is served by the same [`serve`] without the stack.

mod admin;
mod catch_panic;
mod errors;
mod http_metrics;
mod limit;
mod listener;
mod logging;
mod request_id;
mod route_kind;
mod stack;
mod tls;
mod trace;

pub use self::admin::{AdminService, Decide, DecisionApi, Readiness};
pub use self::catch_panic::{CatchPanicLayer, CatchPanicService};
pub use self::errors::{internal_error, timed_out, RecoverLayer, RecoverService};
pub use self::http_metrics::{HttpMetricsLayer, HttpMetricsService};
pub use self::limit::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub use self::listener::{bind, serve, serve_reloadable, serve_with, RemoteAddr, ServeOptions};
pub use self::logging::{init_logging, LoggingError};
pub use self::request_id::{RequestId, RequestIdLayer, RequestIdService, X_REQUEST_ID};
pub use self::route_kind::{route_kind, RouteKind};
pub use self::stack::{stack, stack_with_auth, ServerService, StackConfig};
pub use self::tls::{tls_acceptor, tls_acceptor_with_clients, SharedTls, TlsError};
pub use self::trace::{TraceLayer, TraceService};
