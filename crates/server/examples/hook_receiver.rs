//! A push hook receiver (docs/chat.md, "Push hooks"): verifies each delivery's
//! `Sealkit-Signature` with the hook's secret, refuses stale or forged ones, and prints the event,
//! where a real backend would send a mobile push notification to the channel's offline members.
//!
//! ```console
//! $ cargo run -p sealkit-server --example hook_receiver -- 127.0.0.1:4000 whsec_...
//! $ sealkit app hook set APP_ID --url http://127.0.0.1:4000/ --data-dir ./sealkit-data
//! ```

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use sealkit_proto::hooks::{verify, SIGNATURE_HEADER};
use std::sync::Arc;

/// How far a delivery's timestamp may be from this machine's clock, in seconds.
const TOLERANCE_SECS: i64 = 300;

async fn receive(State(secret): State<Arc<str>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match verify(
        &secret,
        header,
        &body,
        sealkit_server::now(),
        TOLERANCE_SECS,
    ) {
        Ok(event) => {
            // Deduplicate on event.id in a real backend: a retried delivery repeats it.
            println!(
                "{} {:?} in {} (seq {:?}, sender {:?}, member {:?})",
                event.id, event.kind, event.channel, event.seq, event.sender, event.identity
            );
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            eprintln!("refused a delivery: {e}");
            StatusCode::BAD_REQUEST
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(secret)) = (args.next(), args.next()) else {
        return Err("usage: hook_receiver ADDR SECRET".into());
    };
    let app = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .with_state(Arc::<str>::from(secret));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("hook receiver on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
