//! WebSockets through the proxy (issue 18), with a real client and server (tokio-tungstenite): an
//! echo on a `websocket = true` route with the identity headers and assertion of any request, a
//! protected route refusing a handshake without a token before any upgrade, forged identity headers
//! never reaching the upstream, the frame cap in both directions, the idle timeout, the connection
//! closed by a proxy shutdown, and upgrade fields dropped everywhere else (other routes, `h2c`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http::HeaderMap;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::framing::raw;
use crate::harness::{user_id_for, TestProxy, TestUpstream};

/// A WebSocket echo server that records each handshake's headers. `big:<n>` is answered with a
/// binary message of `n` bytes instead of the echo.
struct WsServer {
    addr: std::net::SocketAddr,
    handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    received: Arc<Mutex<Vec<usize>>>,
}

impl WsServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (Arc::clone(&handshakes), Arc::clone(&received));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, r) = (Arc::clone(&h), Arc::clone(&r));
                tokio::spawn(async move {
                    // tungstenite's callback type returns its (large) error response by value.
                    #[allow(clippy::result_large_err)]
                    let record = |req: &Request, resp: Response| {
                        h.lock().unwrap().push(req.headers().clone());
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await
                    else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        r.lock().unwrap().push(msg.len());
                        let reply = match msg.to_text().ok().and_then(|t| t.strip_prefix("big:")) {
                            Some(n) => Message::binary(vec![b'x'; n.parse().unwrap()]),
                            None if msg.is_text() || msg.is_binary() => msg,
                            None => continue,
                        };
                        if ws.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            handshakes,
            received,
        }
    }
}

fn routes(ws: std::net::SocketAddr, idle_ms: u64) -> String {
    format!(
        r#"
[upstreams.ws]
peers = ["{ws}"]
[[routes]]
name = "ws"
prefix = "/ws"
upstream = "ws"
websocket = true
[[routes]]
name = "ws-open"
prefix = "/open"
upstream = "todo"
auth = "none"
websocket = true
[limits]
websocket_idle_timeout_ms = {idle_ms}
websocket_max_frame_bytes = 1024
"#
    )
}

async fn start() -> (WsServer, TestUpstream, TestProxy) {
    start_idle(400).await
}

async fn start_idle(idle_ms: u64) -> (WsServer, TestUpstream, TestProxy) {
    let ws = WsServer::start().await;
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &routes(ws.addr, idle_ms), |_| None).await;
    (ws, up, p)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    p: &TestProxy,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}{path}", p.addr)
        .into_client_request()
        .unwrap();
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next data message, or `None` once the connection is closed (bounded wait).
async fn next(ws: &mut Client) -> Option<Message> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => return Some(m),
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("neither a message nor a close within 5 s"),
        }
    }
}

#[tokio::test]
async fn an_echo_passes_with_the_callers_identity_and_no_forged_one() {
    let (ws, _up, p) = start().await;
    let token = p.token("wendy@example.com").await;
    let bearer = format!("Bearer {token}");
    let mut c = connect(
        &p,
        "/ws/chat",
        &[
            ("authorization", &bearer),
            ("x-user-id", "admin"),
            ("x-user_roles", "admin"),
        ],
    )
    .await
    .expect("the handshake passes");
    for text in ["hello", "again"] {
        c.send(Message::text(text)).await.unwrap();
        assert_eq!(next(&mut c).await, Some(Message::text(text)));
    }
    let h = ws.handshakes.lock().unwrap()[0].clone();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(get("x-user-id"), Some(user_id_for("wendy@example.com")));
    assert!(
        get("x-identity-assertion").is_some(),
        "the assertion rides along"
    );
    assert_eq!(get("x-user-roles").as_deref(), Some("user"));
    assert!(h.get("x-user_roles").is_none());
    assert!(
        get("authorization").is_none(),
        "the token stays at the edge"
    );
    assert_eq!(get("upgrade").as_deref(), Some("websocket"));
}

#[tokio::test]
async fn a_handshake_without_a_token_is_refused_before_the_upgrade() {
    let (ws, _up, p) = start().await;
    match connect(&p, "/ws/chat", &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| "an upgrade")),
    }
    assert!(
        ws.handshakes.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn frames_over_the_cap_close_the_connection_in_both_directions() {
    let (ws, _up, p) = start().await;
    let token = p.token("xena@example.com").await;
    let bearer = format!("Bearer {token}");
    // Client to upstream: the oversized frame never arrives.
    let mut c = connect(&p, "/ws/x", &[("authorization", &bearer)])
        .await
        .unwrap();
    c.send(Message::binary(vec![b'x'; 1000])).await.unwrap();
    assert!(next(&mut c).await.is_some(), "a frame under the cap passes");
    let _ = c.send(Message::binary(vec![b'x'; 2000])).await;
    assert_eq!(next(&mut c).await, None, "closed on the big frame");
    assert_eq!(*ws.received.lock().unwrap(), vec![1000]);
    // Upstream to client: the same cap.
    let mut c = connect(&p, "/ws/x", &[("authorization", &bearer)])
        .await
        .unwrap();
    c.send(Message::text("big:1000")).await.unwrap();
    assert_eq!(next(&mut c).await.map(|m| m.len()), Some(1000));
    c.send(Message::text("big:5000")).await.unwrap();
    assert_eq!(
        next(&mut c).await,
        None,
        "closed before the big frame reached the client"
    );
    let m = p.metrics_with("reason=\"websocket_frame\"").await;
    assert!(
        m.contains("edge_proxy_framing_rejections_total{reason=\"websocket_frame\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let (_ws, _up, p) = start().await;
    let token = p.token("yuri@example.com").await;
    let bearer = format!("Bearer {token}");
    let mut c = connect(&p, "/ws/x", &[("authorization", &bearer)])
        .await
        .unwrap();
    c.send(Message::text("one")).await.unwrap();
    assert!(next(&mut c).await.is_some());
    // Then nothing, either way: the proxy closes it after websocket_idle_timeout_ms.
    assert_eq!(next(&mut c).await, None);
}

#[tokio::test]
async fn no_other_route_and_no_other_protocol_gets_an_upgrade_through() {
    let (_ws, up, p) = start().await;
    let handshake = "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: {proto}\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    for (path, proto) in [("/public/x", "websocket"), ("/open/x", "h2c")] {
        let bytes = handshake.replace("{path}", path).replace("{proto}", proto);
        let a = raw(p.addr, bytes.as_bytes()).await;
        assert_eq!(a.status, Some(200), "{path} {proto}: a plain request");
    }
    for seen in up.forwarded() {
        for name in ["upgrade", "http2-settings"] {
            assert!(seen.headers.get(name).is_none(), "{} got {name}", seen.path);
        }
        let conn = seen
            .headers
            .get("connection")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            !conn
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("upgrade"),
            "{}",
            seen.path
        );
    }
    assert_eq!(up.forwarded().len(), 2);
}

#[tokio::test]
async fn an_open_websocket_is_closed_when_the_proxy_shuts_down() {
    // An idle timeout far beyond the test: only the shutdown can close the connection.
    let (_ws, _up, p) = start_idle(600_000).await;
    let token = p.token("zoe@example.com").await;
    let bearer = format!("Bearer {token}");
    let mut c = connect(&p, "/ws/x", &[("authorization", &bearer)])
        .await
        .unwrap();
    c.send(Message::text("before")).await.unwrap();
    assert!(next(&mut c).await.is_some());
    // Shutdown (the harness's grace period is 0 and its graceful timeout 1 s) runs apart, as the
    // proxy's thread finishes only once it is over.
    let stopping = tokio::task::spawn_blocking(move || drop(p));
    assert_eq!(
        next(&mut c).await,
        None,
        "the connection ends with the proxy"
    );
    stopping.await.unwrap();
}
