//! Upstream pools that come back (issue 18): a peer that was down when the proxy started is used
//! the moment it is up (panic mode, passive health), and a peer that flaps costs no failed request
//! (a refused connect is retried once on another peer and takes the peer out at once; its health
//! check brings it back).

use std::net::SocketAddr;

use crate::harness::{free_port, Recorder, TestProxy, TestUpstream};

fn pool_routes(name: &str, peers: &[SocketAddr], interval_ms: u64, panic: f64) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"
[upstreams.{name}]
peers = [{}]
health_check_interval_ms = {interval_ms}
connect_timeout_ms = 500
panic_threshold = {panic}
[[routes]]
name = "{name}"
prefix = "/{name}"
upstream = "{name}"
auth = "none"
"#,
        peers.join(", ")
    )
}

fn reserved() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

async fn status(p: &TestProxy, path: &str) -> u16 {
    p.get(path, None).await.status().as_u16()
}

async fn readyz_peers(p: &TestProxy, pool: &str) -> serde_json::Value {
    let r = p.client.get(p.admin_url("/readyz")).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["upstreams"][pool].clone()
}

async fn started_before_its_upstream(panic: f64) -> (TestProxy, SocketAddr, TestUpstream) {
    let up = TestUpstream::start().await;
    let late = reserved();
    // A check interval far longer than the test: only the request path can bring the peer back.
    let p = TestProxy::start_with(
        up.addr,
        &pool_routes("late", &[late], 600_000, panic),
        |_| None,
    )
    .await;
    assert_eq!(status(&p, "/late/x").await, 502, "nothing listens yet");
    (p, late, up)
}

#[tokio::test]
async fn a_peer_that_was_down_at_start_serves_as_soon_as_it_is_up() {
    let (p, late, _up) = started_before_its_upstream(0.5).await;
    assert_eq!(readyz_peers(&p, "late").await["healthy_peers"], 0);
    let seen = Recorder::default();
    let (_late_up, _stop) = TestUpstream::start_on(late, seen.clone()).await;
    assert_eq!(
        status(&p, "/late/x").await,
        200,
        "the first request after it is up"
    );
    assert_eq!(seen.all().len(), 1);
    assert_eq!(
        readyz_peers(&p, "late").await["healthy_peers"],
        1,
        "the connect that worked marked it up"
    );
}

#[tokio::test]
async fn without_panic_mode_a_peer_marked_down_waits_for_its_check() {
    // The same start with panic mode off: the peer sits out until its next check (not in this
    // test), which is what panic mode is for.
    let (p, late, _up) = started_before_its_upstream(0.0).await;
    let (_late_up, _stop) = TestUpstream::start_on(late, Recorder::default()).await;
    assert_eq!(status(&p, "/late/x").await, 502);
}

#[tokio::test]
async fn a_flapping_peer_costs_no_failed_request() {
    let up = TestUpstream::start().await;
    let (a_seen, b_seen) = (Recorder::default(), Recorder::default());
    let a = reserved();
    let (b, _b_stop) = TestUpstream::start_on(reserved(), b_seen.clone()).await;
    let (_a, mut a_stop) = TestUpstream::start_on(a, a_seen.clone()).await;
    let routes = pool_routes("flap", &[a, b.addr], 100, 0.5);
    let p = TestProxy::start_with(up.addr, &routes, |_| None).await;
    for round in 0..3 {
        for _ in 0..10 {
            assert_eq!(status(&p, "/flap/x").await, 200, "round {round}, both up");
        }
        let a_before = a_seen.all().len();
        assert!(a_before > 0, "round {round}: peer a took its turns");
        let _ = a_stop.send(());
        for i in 0..10 {
            assert_eq!(
                status(&p, "/flap/x").await,
                200,
                "round {round}, request {i} with a down"
            );
        }
        assert_eq!(a_seen.all().len(), a_before, "round {round}: a was down");
        // (The handle is apart from the upstream: dropping `_again` leaves it serving.)
        let (_again, stop) = TestUpstream::start_on(a, a_seen.clone()).await;
        a_stop = stop;
        // Its next health check (every 100 ms) puts it back in rotation (bounded poll).
        let mut back = false;
        for _ in 0..100 {
            assert_eq!(status(&p, "/flap/x").await, 200);
            if a_seen.all().len() > a_before {
                back = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(back, "round {round}: a never came back");
    }
}
