//! Push hooks: the background task that delivers the store's outbox
//! ([`HookStore`](crate::store::HookStore)) to each application's webhook, signed as
//! `sealkit_proto::hooks` describes, with retries and exponential backoff.
//!
//! Every replica runs the task. A round claims the due events with a lease (so each event is in
//! flight on one replica at a time; one that a crashed replica held is claimed again when the
//! lease ends), POSTs them concurrently, then removes the delivered ones and schedules the
//! failed ones again. Delivery is at least once: a replica that dies after the receiver
//! answered but before it removed the event leaves it to be sent again, with the same id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rand_core::RngCore;
use sealkit_proto::hooks::{sign, HookEvent, EVENT_ID_HEADER, SIGNATURE_HEADER};

use crate::store::{HookDelivery, HookRecord, Store, StoreError};

/// Events claimed per round.
const BATCH: u32 = 32;
/// Attempts after which an event is dropped (with the defaults, about a day of retries).
pub const MAX_ATTEMPTS: i64 = 30;
/// Longest receiver answer read into the error kept for `sealkit app hook show`.
const MAX_ERROR_TEXT: usize = 200;

/// How the delivery task behaves (from [`Config`](crate::Config)'s `hook_*` keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSettings {
    /// Pause between two rounds that found nothing due.
    pub poll: Duration,
    /// Wait before the second attempt; doubled after every further failure.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Time one delivery may take.
    pub timeout: Duration,
}

impl HookSettings {
    /// The settings of `config`.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            poll: Duration::from_millis(config.hook_poll_ms.max(10)),
            retry_base: Duration::from_millis(config.hook_retry_base_ms.max(1)),
            retry_max: Duration::from_millis(config.hook_retry_max_ms.max(1)),
            timeout: Duration::from_secs(config.hook_timeout_secs.max(1)),
        }
    }

    /// How long a claim holds its events: longer than a delivery may take, so a live replica
    /// never sees its events claimed again under it.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// The wait before the next attempt after `failed` failed ones (1, 2, ...): `base`, `2 base`,
/// `4 base`, ... capped at `max`; `None` once [`MAX_ATTEMPTS`] have failed (the event is
/// dropped).
pub fn retry_delay(failed: i64, base: Duration, max: Duration) -> Option<Duration> {
    if failed >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from(failed.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    Some(base.saturating_mul(1 << doublings).min(max.max(base)))
}

/// Errors of the hook administration (`sealkit app hook ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookAdminError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("hook URL {0:?} must be an absolute http:// or https:// URL")]
    BadUrl(String),
    /// The application does not exist.
    #[error("no application {0}")]
    NoSuchApp(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// A new hook secret: `whsec_` and 64 hex digits (32 random bytes). The HMAC key is the whole
/// string's bytes, so receivers need no decoding.
pub fn new_secret() -> zeroize::Zeroizing<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(bytes.as_mut());
    zeroize::Zeroizing::new(format!("whsec_{}", hex::encode(bytes.as_ref())))
}

/// Sets (or replaces) the hook of `app_id` with a new secret; returns the hook, secret
/// included (shown once to the operator).
pub async fn set_hook(
    store: &dyn Store,
    app_id: &str,
    url: &str,
    now: i64,
) -> Result<HookRecord, HookAdminError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| HookAdminError::BadUrl(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(HookAdminError::BadUrl(url.to_owned()));
    }
    let hook = HookRecord {
        app_id: app_id.to_owned(),
        url: url.to_owned(),
        secret: new_secret().to_string(),
        created_at: now,
    };
    match store.hook_set(hook.clone()).await {
        Ok(()) => Ok(hook),
        Err(StoreError::NotFound) => Err(HookAdminError::NoSuchApp(app_id.to_owned())),
        Err(e) => Err(HookAdminError::Store(e)),
    }
}

/// The body of a delivery: the queued event with its id.
fn body(delivery: &HookDelivery) -> Result<Vec<u8>, serde_json::Error> {
    let mut event: HookEvent = serde_json::from_str(&delivery.payload)?;
    event.id = delivery.id.to_string();
    serde_json::to_vec(&event)
}

/// Starts the delivery task of this process; it runs as long as the runtime.
pub fn spawn_delivery(store: Arc<dyn Store>, settings: HookSettings) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        // A receiver that moved must be configured again: following redirects would send
        // signed events wherever a compromised receiver points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sealkit-hooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "push hooks: no HTTP client; hooks are not delivered");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let delivered = round(store.as_ref(), &client, &settings).await;
            if delivered == 0 {
                tokio::time::sleep(settings.poll).await;
            }
        }
    });
}

/// One round: claims due events and delivers them. Returns how many were claimed.
async fn round(store: &dyn Store, client: &reqwest::Client, settings: &HookSettings) -> usize {
    let lease_ms = i64::try_from(settings.lease().as_millis()).unwrap_or(i64::MAX);
    let claimed = match store.hook_claim(crate::now_ms(), lease_ms, BATCH).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "push hooks: claiming events failed");
            return 0;
        }
    };
    let count = claimed.len();
    join_all(
        claimed
            .iter()
            .map(|delivery| deliver_one(store, client, settings, delivery)),
    )
    .await;
    count
}

/// Sends one event and records the outcome.
async fn deliver_one(
    store: &dyn Store,
    client: &reqwest::Client,
    settings: &HookSettings,
    delivery: &HookDelivery,
) {
    let outcome = match body(delivery) {
        Ok(body) => post(client, delivery, body).await,
        Err(e) => {
            // Not ours to fix by retrying: drop it.
            tracing::error!(id = delivery.id, error = %e, "push hooks: unreadable queued event");
            let _ = store
                .hook_retry(delivery.id, None, "unreadable event")
                .await;
            return;
        }
    };
    let recorded = match outcome {
        Ok(()) => store.hook_ack(delivery.id).await,
        Err(error) => {
            let failed = delivery.attempts + 1;
            let next = retry_delay(failed, settings.retry_base, settings.retry_max).map(|d| {
                crate::now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            });
            if next.is_none() {
                tracing::warn!(id = delivery.id, app = %delivery.app_id, %error,
                    "push hooks: giving up on an event after {failed} attempts");
            } else {
                tracing::debug!(id = delivery.id, %error, failed, "push hooks: delivery failed");
            }
            store.hook_retry(delivery.id, next, &error).await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the event is sent again: at least once.
        tracing::warn!(id = delivery.id, error = %e, "push hooks: recording an outcome failed");
    }
}

/// POSTs a signed body; `Err` with a short reason unless the receiver answered 2xx.
async fn post(
    client: &reqwest::Client,
    delivery: &HookDelivery,
    body: Vec<u8>,
) -> Result<(), String> {
    let signature = sign(&delivery.secret, crate::now(), &body);
    let response = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, delivery.id.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(MAX_ERROR_TEXT).collect();
    Err(format!("HTTP {}: {text}", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        let delays: Vec<_> = (1..=6)
            .map(|n| retry_delay(n, base, max).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            delays,
            [Some(5), Some(10), Some(20), Some(40), Some(60), Some(60)]
        );
        assert_eq!(
            retry_delay(MAX_ATTEMPTS - 1, base, max),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_delay(MAX_ATTEMPTS, base, max), None);
        // A cap below the base never shortens the first wait.
        assert_eq!(
            retry_delay(1, base, Duration::from_secs(1)),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn secrets_are_fresh_and_well_formed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(*a, *b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64);
    }
}
