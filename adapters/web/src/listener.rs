//! Serving an app on a TCP listener: what `actix_web::HttpServer::listen`
//! does (actix-server accepting, actix-http's HTTP/1 service on each
//! connection), except that each connection is wrapped in a
//! [`ProblemStream`], so that the answers the HTTP parser writes by itself
//! are problem+json too, and every request on it (head and body, on a fresh
//! or a kept-alive connection) must arrive within the request timeout.
//! `HttpServer` has no way to wrap a connection.
//!
//! ```ignore
//! let builder = web::listener::Server::build().workers(2);
//! let builder = web::listener::listen(builder, "api", listener, connections, || App::new())?;
//! let server = builder.run();
//! ```

use std::fmt;
use std::future::ready;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{Extensions, HttpService, Request, Response};
use actix_service::{
    fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _,
};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;

pub use actix_server::{Server, ServerBuilder};

use crate::wire::ProblemStream;

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// A whole request (head and body) must arrive within this, counted from
    /// its first bytes (`TOKENWARDEN_REQUEST_TIMEOUT`), else 408 and the
    /// connection is closed. The dispatcher's own head timer, with the same
    /// setting, also counts from the connection's opening: it closes a
    /// connection on which nothing arrives.
    pub request_timeout: Duration,
    /// Idle keep-alive connections close after this (`TOKENWARDEN_KEEP_ALIVE`).
    pub keep_alive: Duration,
}

/// `HttpServer`'s default: how long a closing connection waits for the
/// client to acknowledge.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Adds `listener` to `builder`, serving the app that `factory` makes (once
/// per worker) over HTTP/1.1 with [`ProblemStream`] connections.
///
/// # Errors
/// The listener's own: its local address, making it non-blocking.
pub fn listen<F, I, S, B>(
    builder: ServerBuilder,
    name: &str,
    listener: TcpListener,
    connections: Connections,
    factory: F,
) -> io::Result<ServerBuilder>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let stopping = builder.graceful_shutdown_signal();
    builder.listen(name, listener, move || {
        let stopping = stopping.clone();
        let app = factory()
            .into_factory()
            .map_err(|err| err.into().error_response());
        let http = HttpService::build()
            // Keep-alive connections are closed when the server stops.
            .graceful_shutdown_signal(move || {
                let stopping = stopping.clone();
                async move { stopping.notified().await }
            })
            .keep_alive(connections.keep_alive)
            .client_request_timeout(connections.request_timeout)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            // The request's arrival deadline, for the body reader.
            .on_connect_ext(|io: &ProblemStream<TcpStream>, data: &mut Extensions| {
                if let Some(arrival) = io.request_arrival() {
                    data.insert(arrival);
                }
            })
            .local_addr(addr)
            .h1(map_config(app, move |()| app_config(addr)));
        fn_service(move |io: TcpStream| {
            let peer = io.peer_addr().ok();
            ready(Ok::<_, actix_http::error::DispatchError>((
                ProblemStream::with_request_timeout(io, connections.request_timeout),
                peer,
            )))
        })
        .and_then(http)
    })
}

/// The app's view of its listener, as `HttpServer` gives it: not TLS, the
/// host (for a request without a `Host` header) the listener's address.
fn app_config(addr: SocketAddr) -> AppConfig {
    // `AppConfig::new` is crate-private; this is the same constructor,
    // public for actix-test (pinned by Cargo.lock).
    AppConfig::__priv_test_new(false, addr.to_string(), addr)
}
