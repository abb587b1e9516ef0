//! One MQTT session per connections.json entry. rumqttc's event loop runs in a task of its
//! own; each publish waits for its confirmation, matched by packet id.
//!
//! rumqttc reports `Outgoing::Publish(pkid)` in the order publishes were requested, so a
//! publish queues its waiter and its request under one lock, and the event task hands the
//! next waiter the packet id it was given; PUBACK/PUBCOMP with that id confirm it. After a
//! connection error the session is dropped whole (its waiters fail as unavailable, the
//! senders retry) and the next publish starts a clean one: no retransmission of an old
//! session can be mistaken for a new publish.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, QoS,
};
use tokio::sync::{Mutex, oneshot};

use crate::error::MqttError;

/// How long a publish waits for its confirmation (connecting included).
pub(crate) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed session, publishes fail at once for this long instead of each
/// connecting again.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

type Waiter = oneshot::Sender<Result<(), MqttError>>;

#[derive(Default)]
struct Waiters {
    /// Requested, not yet given a packet id (in request order).
    queued: VecDeque<(QoS, Waiter)>,
    /// Sent with QoS 1 or 2, waiting for PUBACK / PUBCOMP.
    sent: HashMap<u16, Waiter>,
    /// The session failed: new publishes must not queue here.
    failed: Option<MqttError>,
}

impl Waiters {
    fn fail_all(&mut self, error: &MqttError) {
        for (_, waiter) in self.queued.drain(..) {
            let _ = waiter.send(Err(error.clone()));
        }
        for (_, waiter) in self.sent.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        self.failed = Some(error.clone());
    }
}

/// A live session: the client half and the waiters its event task serves.
struct Session {
    client: AsyncClient,
    waiters: Arc<StdMutex<Waiters>>,
    connected: Arc<AtomicBool>,
    /// Keeps "queue the waiter, send the request" one step.
    order: Mutex<()>,
}

impl Session {
    fn failed(&self) -> bool {
        self.waiters.lock().map_or(true, |w| w.failed.is_some())
    }
}

/// The shared broker handle of one connection entry.
pub(crate) struct Broker {
    name: String,
    options: MqttOptions,
    session: Mutex<Option<Arc<Session>>>,
    last_failure: Arc<StdMutex<Option<(Instant, MqttError)>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub(crate) fn new(name: String, options: MqttOptions) -> Self {
        Self {
            name,
            options,
            session: Mutex::new(None),
            last_failure: Arc::new(StdMutex::new(None)),
        }
    }

    /// Publish and wait for the broker's confirmation (for QoS 0: until it was written).
    pub(crate) async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), MqttError> {
        let session = self.session().await?;
        let (tx, rx) = oneshot::channel();
        {
            let _order = session.order.lock().await;
            {
                let mut waiters = session
                    .waiters
                    .lock()
                    .map_err(|_| MqttError::Unavailable("session state poisoned".into()))?;
                if let Some(error) = &waiters.failed {
                    return Err(error.clone());
                }
                waiters.queued.push_back((qos, tx));
            }
            if let Err(e) = session
                .client
                .publish_bytes(topic, qos, retain, payload)
                .await
            {
                // The event loop is gone; the task has failed (or will fail) the waiters.
                return Err(MqttError::Unavailable(e.to_string()));
            }
        }
        match tokio::time::timeout(CONFIRM_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MqttError::Unavailable("the session ended".into())),
            Err(_) => {
                // An unconfirmed publish leaves the session in doubt: start a new one.
                self.discard(&session).await;
                Err(MqttError::Timeout)
            }
        }
    }

    /// Whether the current session is connected.
    pub(crate) async fn healthy(&self) -> Result<(), MqttError> {
        let session = self.session().await?;
        if session.connected.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Give a fresh session a moment to connect.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !session.failed() {
            if session.connected.load(Ordering::Relaxed) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let failure = self.last_failure.lock().ok().and_then(|f| f.clone());
        Err(failure.map_or_else(
            || MqttError::Unavailable("not connected yet".into()),
            |(_, e)| e,
        ))
    }

    pub(crate) async fn close(&self) {
        if let Some(session) = self.session.lock().await.take() {
            let _ = session.client.disconnect().await;
        }
    }

    async fn discard(&self, session: &Arc<Session>) {
        let mut current = self.session.lock().await;
        if current.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *current = None;
        }
        if let Ok(mut waiters) = session.waiters.lock() {
            waiters.fail_all(&MqttError::Timeout);
        }
        let _ = session.client.try_disconnect();
    }

    /// The live session, or a new one (unless the last one failed a moment ago).
    async fn session(&self) -> Result<Arc<Session>, MqttError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            if !session.failed() {
                return Ok(Arc::clone(session));
            }
            *current = None;
        }
        if let Ok(last) = self.last_failure.lock()
            && let Some((at, error)) = last.as_ref()
            && at.elapsed() < RETRY_PAUSE
        {
            return Err(error.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), 64);
        // Without TCP_NODELAY a PUBLISH that ends in a small segment waits for the broker's
        // delayed ACK (~40 ms at p99 under load).
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let session = Arc::new(Session {
            client,
            waiters: Arc::new(StdMutex::new(Waiters::default())),
            connected: Arc::new(AtomicBool::new(false)),
            order: Mutex::new(()),
        });
        tokio::spawn(run(
            self.name.clone(),
            eventloop,
            Arc::clone(&session.waiters),
            Arc::clone(&session.connected),
            Arc::clone(&self.last_failure),
        ));
        *current = Some(Arc::clone(&session));
        Ok(session)
    }
}

/// The event task of one session: drives rumqttc's loop, confirms publishes, and on the
/// first error fails every waiter and ends (the session is not reused).
async fn run(
    name: String,
    mut eventloop: EventLoop,
    waiters: Arc<StdMutex<Waiters>>,
    connected: Arc<AtomicBool>,
    last_failure: Arc<StdMutex<Option<(Instant, MqttError)>>>,
) {
    let error = loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => break classify(&e),
        };
        let Ok(mut w) = waiters.lock() else {
            break MqttError::Unavailable("session state poisoned".into());
        };
        if w.failed.is_some() {
            // Discarded (a confirmation timed out): stop driving it.
            return;
        }
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                connected.store(true, Ordering::Relaxed);
                tracing::info!(connection = %name, "connected to the mqtt broker");
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some((qos, waiter)) = w.queued.pop_front() {
                    if qos == QoS::AtMostOnce {
                        let _ = waiter.send(Ok(()));
                    } else {
                        w.sent.insert(pkid, waiter);
                    }
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(waiter) = w.sent.remove(&ack.pkid) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Event::Incoming(Packet::PubComp(comp)) => {
                if let Some(waiter) = w.sent.remove(&comp.pkid) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                break MqttError::Unavailable("disconnected".into());
            }
            _ => {}
        }
    };
    connected.store(false, Ordering::Relaxed);
    tracing::warn!(connection = %name, error = %error, "mqtt session ended");
    if let Ok(mut w) = waiters.lock() {
        w.fail_all(&error);
    }
    if let Ok(mut last) = last_failure.lock() {
        *last = Some((Instant::now(), error));
    }
}

fn classify(error: &ConnectionError) -> MqttError {
    match error {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                MqttError::Refused(format!("{code:?} (check username and password)"))
            }
            ConnectReturnCode::RefusedProtocolVersion | ConnectReturnCode::BadClientId => {
                MqttError::Refused(format!("{code:?}"))
            }
            _ => MqttError::Unavailable(format!("{code:?}")),
        },
        other => MqttError::Unavailable(other.to_string()),
    }
}
