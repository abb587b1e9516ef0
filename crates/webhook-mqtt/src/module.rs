use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::config::{MqttConfig, MqttConnection};
use crate::message::Shape;
use crate::session::Broker;

/// The `mqtt` destination.
#[derive(Debug)]
pub struct Mqtt {
    broker: Arc<Broker>,
    shape: Shape,
    qos: QoS,
    retain: bool,
}

impl Module for Mqtt {
    const KIND: &'static str = "mqtt";
    const CONNECTION_TYPES: &'static [&'static str] = &["mqtt"];
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["topic"];
    type Config = MqttConfig;
    type Connection = MqttConnection;

    fn validate(config: &MqttConfig, _: &BuildContext) -> Result<(), BuildError> {
        Shape::from_config(config).map(|_| ())
    }

    async fn build(
        config: MqttConfig,
        connection: Option<MqttConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("an mqtt connection is required"))?;
        let name = context.connection_name.clone().unwrap_or_default();
        let broker = context
            .shared
            .get_or_try_init(&name, || async {
                Ok(Broker::new(name.clone(), options(&connection, &name)?))
            })
            .await?;
        let qos = match config.qos {
            0 => {
                tracing::warn!(webhook = %context.webhook_id, "mqtt qos 0: the broker does not confirm messages, so a webhook answered 2xx can be lost on the way; use qos 1 or 2");
                QoS::AtMostOnce
            }
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        let shape = Shape::from_config(&config)?;
        if let Err(err) = broker.healthy().await {
            tracing::warn!(connection = %name, error = %err, "mqtt broker not reachable at start-up");
        }
        Ok(Self {
            broker,
            shape,
            qos,
            retain: config.retained,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let payload = self.shape.payload(delivery)?;
        self.broker
            .publish(&self.shape.topic, self.qos, self.retain, payload)
            .await?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, topic = %self.shape.topic, "published to mqtt");
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        self.broker.healthy().await.map_err(ModuleError::from)
    }

    async fn shutdown(&self) {
        self.broker.close().await;
    }
}

/// rumqttc's options for a connection entry.
fn options(connection: &MqttConnection, name: &str) -> Result<MqttOptions, BuildError> {
    match connection.mqtt_version.as_deref() {
        None | Some("3.1.1" | "3.1" | "311" | "4") => {}
        Some("5" | "5.0") => tracing::warn!(
            connection = %name,
            "mqtt_version 5: this gateway speaks MQTT 3.1.1, which MQTT 5 brokers accept too"
        ),
        Some(other) => {
            return Err(BuildError::other(format!(
                "mqtt_version `{other}` is not one of 3.1.1, 3.1, 5"
            )));
        }
    }
    if connection.tls_insecure {
        return Err(BuildError::other(
            "tls_insecure (no certificate check) is not supported; trust the broker's CA with \
             tls_ca_cert_file instead",
        ));
    }
    let client_id = connection
        .client_id
        .clone()
        .unwrap_or_else(|| format!("webhook-gateway-{}-{name}", std::process::id()));
    let mut options = MqttOptions::new(client_id, connection.host.clone(), connection.port);
    options
        .set_keep_alive(Duration::from_secs(u64::from(connection.keepalive.max(5))))
        .set_clean_session(true)
        .set_max_packet_size(16 << 20, 16 << 20)
        .set_inflight(256);
    // (`""`, as `{$MQTT_USER:}` gives when unset, is none)
    let username = connection.username.as_ref().filter(|u| !u.is_empty());
    let password = connection
        .password
        .as_ref()
        .filter(|p| !p.expose().is_empty());
    match (username, password) {
        (Some(user), password) => {
            options.set_credentials(
                user.clone(),
                password.map(|p| p.expose().to_owned()).unwrap_or_default(),
            );
        }
        (None, Some(_)) => return Err(BuildError::other("`password` needs a `username`")),
        (None, None) => {}
    }
    let wants_tls = connection.tls
        || connection.tls_ca_cert_file.is_some()
        || connection.tls_cert_file.is_some();
    if wants_tls {
        options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls_config(
            connection,
        )?)));
    }
    Ok(options)
}

fn tls_config(connection: &MqttConnection) -> Result<Arc<rustls::ClientConfig>, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(file) = &connection.tls_ca_cert_file {
        for cert in CertificateDer::pem_file_iter(file)
            .map_err(|e| BuildError::other(format!("tls_ca_cert_file {file}: {e}")))?
        {
            let cert =
                cert.map_err(|e| BuildError::other(format!("tls_ca_cert_file {file}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| BuildError::other(format!("tls_ca_cert_file {file}: {e}")))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| BuildError::other(format!("TLS set-up failed: {e}")))?
    .with_root_certificates(roots);
    let config = match (&connection.tls_cert_file, &connection.tls_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| BuildError::other(format!("tls_cert_file {cert}: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| BuildError::other(format!("tls_key_file {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| BuildError::other(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(BuildError::other(
                "give both `tls_cert_file` and `tls_key_file`, or neither",
            ));
        }
    };
    Ok(Arc::new(config))
}
