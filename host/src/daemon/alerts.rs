//! Alerts out of `serve`: `--heartbeat-url` is requested (GET) after each successful
//! scheduled run, the healthchecks.io / Litestream convention, so that a missing ping
//! raises the alarm elsewhere; `--alert-webhook` receives a JSON POST on each failed
//! scheduled run or drill: `{"Operation", "Error", "Time", "Host", "Backup"}`.
//!
//! A dead endpoint never blocks or fails a backup: the schedule only queues a delivery in a
//! bounded channel (dropped, with a warning, when full) and one thread of its own sends them,
//! each attempt bounded (connect 5 s, all 10 s), at most three attempts with a pause
//! between, every failure logged. Both `https` and plain `http` are allowed: heartbeat
//! services are https, an operator's own receiver may well be http on an internal network.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How many deliveries may wait; more are dropped with a warning.
const QUEUED: usize = 32;
/// The bounds of one attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per delivery, and the pause after the first failed one (doubled after each).
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Where alerts go, as configured; cheap to share with the schedule's thread.
pub struct Alerts {
    queue: Option<SyncSender<Delivery>>,
    sender: Option<JoinHandle<()>>,
    /// Told when the sender's thread has delivered (or given up on) everything queued.
    drained: Option<Receiver<()>>,
    endpoints: Endpoints,
}

/// One failed scheduled run or drill, as the webhook receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// What failed: the first operation of the run that failed (`create`, `verify`,
    /// `prune`, `push`, `remote_prune`), or `drill`.
    #[serde(rename = "Operation")]
    pub operation: String,
    /// Why, as the log says it.
    #[serde(rename = "Error")]
    pub error: String,
    /// When it ended, RFC 3339 in UTC.
    #[serde(rename = "Time")]
    pub time: String,
    /// This machine's host name.
    #[serde(rename = "Host")]
    pub host: String,
    /// The backup made or drilled, if there was one.
    #[serde(rename = "Backup")]
    pub backup: Option<String>,
}

impl Alert {
    pub fn new(operation: &str, error: &str, ended: SystemTime, backup: Option<&str>) -> Alert {
        Alert {
            operation: operation.to_owned(),
            error: error.to_owned(),
            time: humantime::format_rfc3339_seconds(ended).to_string(),
            host: host_name(),
            backup: backup.map(str::to_owned),
        }
    }
}

enum Delivery {
    Heartbeat(Endpoint),
    Alert(Endpoint, Alert),
}

/// A URL to deliver to, and how the log names it: scheme and host only, since a
/// heartbeat's path is its secret.
#[derive(Clone)]
struct Endpoint {
    url: reqwest::Url,
    shown: String,
}

impl Endpoint {
    fn parse(setting: &str, text: &str) -> Result<Endpoint, String> {
        let url =
            reqwest::Url::parse(text.trim()).map_err(|e| format!("{setting}: not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{setting}: {}:// is not http:// or https://",
                url.scheme()
            ));
        }
        let host = url.host_str().unwrap_or_default();
        let shown = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        Ok(Endpoint { url, shown })
    }
}

/// The configured endpoints.
#[derive(Clone, Default)]
struct Endpoints {
    heartbeat: Option<Endpoint>,
    webhook: Option<Endpoint>,
}

/// Checks a `--heartbeat-url` or `--alert-webhook` value: an http or https URL.
pub fn check_url(setting: &str, text: &str) -> Result<(), String> {
    Endpoint::parse(setting, text).map(|_| ())
}

impl Alerts {
    /// Sends nothing.
    pub fn none() -> Alerts {
        Alerts {
            queue: None,
            sender: None,
            drained: None,
            endpoints: Endpoints::default(),
        }
    }

    /// Starts the sender's thread when either URL is given; a URL that is not http or
    /// https is refused.
    pub fn start(heartbeat: Option<&str>, webhook: Option<&str>) -> std::io::Result<Alerts> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let endpoints = Endpoints {
            heartbeat: heartbeat
                .map(|url| Endpoint::parse("--heartbeat-url", url))
                .transpose()
                .map_err(invalid)?,
            webhook: webhook
                .map(|url| Endpoint::parse("--alert-webhook", url))
                .transpose()
                .map_err(invalid)?,
        };
        if endpoints.heartbeat.is_none() && endpoints.webhook.is_none() {
            return Ok(Alerts::none());
        }
        let (queue, deliveries) = mpsc::sync_channel(QUEUED);
        let (done, drained) = mpsc::channel();
        let sender = std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || {
                send_all(deliveries);
                let _ = done.send(());
            })?;
        if let Some(heartbeat) = &endpoints.heartbeat {
            tracing::info!(
                "a heartbeat goes to {} after each successful scheduled run",
                heartbeat.shown
            );
        }
        if let Some(webhook) = &endpoints.webhook {
            tracing::info!(
                "each failed scheduled run or drill is posted to {}",
                webhook.shown
            );
        }
        Ok(Alerts {
            queue: Some(queue),
            sender: Some(sender),
            drained: Some(drained),
            endpoints,
        })
    }

    /// After a successful scheduled run: requests the heartbeat URL, if there is one.
    pub fn heartbeat(&self) {
        if let Some(endpoint) = &self.endpoints.heartbeat {
            self.queue(Delivery::Heartbeat(endpoint.clone()));
        }
    }

    /// After a failed scheduled run or drill: posts `alert` to the webhook, if there is one.
    pub fn alert(&self, alert: Alert) {
        if let Some(endpoint) = &self.endpoints.webhook {
            self.queue(Delivery::Alert(endpoint.clone(), alert));
        }
    }

    fn queue(&self, delivery: Delivery) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(delivery) {
            Ok(()) => {}
            Err(TrySendError::Full(delivery)) => tracing::warn!(
                "{} deliveries to {} are already waiting; this one is dropped",
                QUEUED,
                delivery.endpoint().shown
            ),
            Err(TrySendError::Disconnected(delivery)) => tracing::warn!(
                "the alerts' thread has ended; nothing more goes to {}",
                delivery.endpoint().shown
            ),
        }
    }

    /// Lets what is queued go, waiting at most `patience` for it (a dead endpoint must not
    /// hold up a shutdown for long); what is still unsent then is abandoned.
    pub fn finish(mut self, patience: Duration) {
        drop(self.queue.take());
        let (Some(sender), Some(drained)) = (self.sender.take(), self.drained.take()) else {
            return;
        };
        match drained.recv_timeout(patience) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if sender.join().is_err() {
                    tracing::error!("the alerts' thread panicked");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                "alerts still unsent after {}: abandoned",
                humantime::format_duration(patience)
            ),
        }
    }
}

impl Delivery {
    fn endpoint(&self) -> &Endpoint {
        match self {
            Delivery::Heartbeat(endpoint) | Delivery::Alert(endpoint, _) => endpoint,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Delivery::Heartbeat(_) => "heartbeat",
            Delivery::Alert(..) => "alert",
        }
    }
}

/// The sender's thread: one delivery at a time, until the queue is closed.
fn send_all(deliveries: Receiver<Delivery>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("no alert or heartbeat can be sent: {e}");
            return;
        }
    };
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(concat!("litegraph-backup/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("no alert or heartbeat can be sent: {e}");
            return;
        }
    };
    while let Ok(delivery) = deliveries.recv() {
        runtime.block_on(deliver(&client, &delivery));
    }
}

/// Up to [`ATTEMPTS`] attempts, pausing between them; a refusal that another attempt
/// would not change (a 4xx other than 408 and 429) ends it at once.
async fn deliver(client: &reqwest::Client, delivery: &Delivery) {
    let endpoint = delivery.endpoint();
    let what = delivery.what();
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let request = match delivery {
            Delivery::Heartbeat(endpoint) => client.get(endpoint.url.clone()),
            Delivery::Alert(endpoint, alert) => client
                .post(endpoint.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(alert).expect("an alert is plain strings")),
        };
        let why = match request.send().await {
            Ok(answer) if answer.status().is_success() => return,
            Ok(answer) => {
                let status = answer.status();
                let final_answer = status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
                if final_answer {
                    tracing::warn!(
                        "the {what} to {} was refused with {status}; not retried",
                        endpoint.shown
                    );
                    return;
                }
                format!("answered {status}")
            }
            // Without the URL: its path or query may be a secret.
            Err(e) => describe(&e.without_url()),
        };
        if attempt == ATTEMPTS {
            tracing::warn!(
                "the {what} to {} failed ({why}) {ATTEMPTS} times; given up",
                endpoint.shown
            );
            return;
        }
        tracing::warn!(
            "the {what} to {} failed ({why}), attempt {attempt} of {ATTEMPTS}; retrying in {}",
            endpoint.shown,
            humantime::format_duration(pause)
        );
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// An HTTP client error with its causes: `error sending request: connection refused`.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// This machine's name, as `uname -n` says it.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_are_taken() {
        assert!(check_url("--alert-webhook", "https://hooks.example.com/x").is_ok());
        assert!(check_url("--alert-webhook", "http://10.0.0.5:8080/alerts").is_ok());
        for refused in ["ftp://example.com/", "hooks.example.com/x", "", "http//x"] {
            assert!(check_url("--alert-webhook", refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_log_shows_scheme_and_host_but_not_the_secret_path() {
        let endpoint =
            Endpoint::parse("--heartbeat-url", "https://hc-ping.com/0f3c-secret?x=1").expect("ok");
        assert_eq!(endpoint.shown, "https://hc-ping.com");
        let endpoint = Endpoint::parse("--alert-webhook", "http://127.0.0.1:9/a").expect("ok");
        assert_eq!(endpoint.shown, "http://127.0.0.1:9");
    }

    #[test]
    fn an_alert_has_the_fields_a_receiver_reads() {
        let alert = Alert::new(
            "create",
            "no backup was made: busy",
            SystemTime::UNIX_EPOCH,
            None,
        );
        let json = serde_json::to_value(&alert).expect("JSON");
        assert_eq!(json["Operation"], "create");
        assert_eq!(json["Error"], "no backup was made: busy");
        assert_eq!(json["Time"], "1970-01-01T00:00:00Z");
        assert!(!json["Host"].as_str().expect("a host").is_empty());
        assert_eq!(json["Backup"], serde_json::Value::Null);
    }

    #[test]
    fn a_full_queue_drops_without_waiting() {
        let (queue, _deliveries) = mpsc::sync_channel(1);
        let endpoint = Endpoint::parse("--alert-webhook", "http://127.0.0.1:9/").expect("ok");
        let alerts = Alerts {
            queue: Some(queue),
            sender: None,
            drained: None,
            endpoints: Endpoints {
                heartbeat: None,
                webhook: Some(endpoint),
            },
        };
        // Nobody receives: the second and third are dropped, and none of these blocks.
        for _ in 0..3 {
            alerts.alert(Alert::new("drill", "failed", SystemTime::UNIX_EPOCH, None));
        }
    }
}
