//! A second origin for the CORS tests: a tiny HTTP server on its own port
//! that serves a page of "another app" and a copy of the client module, as
//! an app that embeds `tokenwarden.js` would.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// The client module as the binary serves it.
fn module() -> String {
    let asset = web::pages::ASSETS
        .iter()
        .find(|a| a.path == "/assets/tokenwarden.js")
        .unwrap();
    String::from_utf8(asset.bytes.to_vec()).unwrap()
}

/// A listener for another app at `http://<host>:<free port>` (its origin).
pub async fn bind(host: &str) -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, format!("http://{host}:{port}"))
}

/// Serves `/` (a page making a `TokenWardenClient` for `api`, as
/// `window.tw`) and `/tokenwarden.js` until the test process ends.
pub fn serve(listener: TcpListener, api: &str) {
    let page = format!(
        "<!doctype html><html lang=en><title>Another app</title><h1>Another app</h1>\
         <script type=module>import {{ TokenWardenClient }} from './tokenwarden.js';\
         window.tw = new TokenWardenClient({{ baseUrl: '{api}', name: 'other-app' }});\
         document.title = 'ready';</script></html>"
    );
    let module = module();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (page, module) = (page.clone(), module.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, kind, body) = match path {
                    "/" => ("200 OK", "text/html", page),
                    "/tokenwarden.js" => ("200 OK", "text/javascript", module),
                    _ => ("404 Not Found", "text/plain", String::new()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
}
