use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use rusty_s3::actions::{HeadBucket, PutObject, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use webhook_core::config::timeout_seconds;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError, is_sensitive_header};
use webhook_http_client::HttpClient;

use crate::config::{S3Config, S3Connection};
use crate::error::S3Error;
use crate::key::KeyLayout;

/// How long a signed URL stays valid (it is used at once).
const SIGNATURE_TTL: Duration = Duration::from_secs(300);
/// How long `health` waits.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The `s3` destination.
#[derive(Debug)]
pub struct S3 {
    client: HttpClient,
    bucket: Bucket,
    credentials: Credentials,
    layout: KeyLayout,
    include_headers: bool,
    content_type: HeaderValue,
    timeout: Duration,
}

impl Module for S3 {
    const KIND: &'static str = "s3";
    const CONNECTION_TYPES: &'static [&'static str] = &["s3"];
    type Config = S3Config;
    type Connection = S3Connection;

    fn validate(config: &S3Config, _: &BuildContext) -> Result<(), BuildError> {
        KeyLayout::parse(&config.prefix, &config.filename_pattern)?;
        content_type(&config.content_type)?;
        if config.bucket.is_empty() || config.bucket.len() > 255 || config.bucket.contains('/') {
            return Err(BuildError::key(
                "bucket",
                "must be a bucket name (1 to 255 characters, no `/`)",
            ));
        }
        timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?;
        Ok(())
    }

    async fn build(
        config: S3Config,
        connection: Option<S3Connection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("an s3 connection is required"))?;
        let bucket = bucket(&config.bucket, &connection)?;
        let credentials = match &connection.aws_session_token {
            Some(token) => Credentials::new_with_token(
                connection.aws_access_key_id.clone(),
                connection.aws_secret_access_key.expose().to_owned(),
                token.expose().to_owned(),
            ),
            None => Credentials::new(
                connection.aws_access_key_id.clone(),
                connection.aws_secret_access_key.expose().to_owned(),
            ),
        };
        Ok(Self {
            client: HttpClient::for_pipeline(context).await?,
            bucket,
            credentials,
            layout: KeyLayout::parse(&config.prefix, &config.filename_pattern)?,
            include_headers: config.include_headers,
            content_type: content_type(&config.content_type)?,
            timeout: timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let key = self.layout.key(delivery);
        let metadata = self.metadata(delivery);
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), &key);
        let signed = action.headers_mut();
        signed.insert(
            "content-type",
            self.content_type.to_str().unwrap_or_default(),
        );
        for (name, value) in &metadata {
            signed.insert(name.as_str(), value.to_str().unwrap_or_default());
        }
        let url = action.sign(SIGNATURE_TTL);

        let mut request = Request::new(Full::new(delivery.body.clone()));
        *request.method_mut() = Method::PUT;
        *request.uri_mut() = url.as_str().parse::<Uri>().map_err(S3Error::Url)?;
        let headers = request.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, self.content_type.clone());
        for (name, value) in metadata {
            headers.insert(name, value);
        }
        let response = self
            .client
            .send(request, self.timeout)
            .await
            .map_err(S3Error::Http)?;
        if response.status() != StatusCode::OK {
            return Err(S3Error::refused(response.status(), response.body()).into());
        }
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, bucket = self.bucket.name(), key, "stored");
        Ok(())
    }

    /// `HEAD` the bucket: reachable, credentials accepted, bucket there.
    async fn health(&self) -> Result<(), ModuleError> {
        let url = HeadBucket::new(&self.bucket, Some(&self.credentials)).sign(SIGNATURE_TTL);
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = Method::HEAD;
        *request.uri_mut() = url.as_str().parse::<Uri>().map_err(S3Error::Url)?;
        let response = self
            .client
            .send(request, HEALTH_TIMEOUT.min(self.timeout))
            .await
            .map_err(S3Error::Http)?;
        if response.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(S3Error::refused(response.status(), response.body()).into())
        }
    }
}

impl S3 {
    /// `x-amz-meta-webhook-id` and `-webhook-request-id`, and with `include_headers` one
    /// `x-amz-meta-<name>` per request header (credentials and non-ASCII values left out).
    fn metadata(&self, delivery: &Delivery) -> Vec<(HeaderName, HeaderValue)> {
        let mut metadata = Vec::with_capacity(
            2 + if self.include_headers {
                delivery.headers.len()
            } else {
                0
            },
        );
        let ids = [
            ("webhook-id", &*delivery.webhook_id),
            ("webhook-request-id", &delivery.request_id.to_string()),
        ];
        for (name, value) in ids {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()),
                HeaderValue::from_str(value),
            ) {
                metadata.push((name, value));
            }
        }
        if self.include_headers {
            for (name, value) in delivery.headers.iter() {
                if is_sensitive_header(name.as_str())
                    || value.to_str().is_err()
                    || metadata
                        .iter()
                        .any(|(n, _)| n.as_str()[11..] == *name.as_str())
                {
                    continue;
                }
                if let Ok(meta) = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()) {
                    metadata.push((meta, value.clone()));
                }
            }
        }
        metadata
    }
}

fn bucket(name: &str, connection: &S3Connection) -> Result<Bucket, BuildError> {
    let endpoint = connection
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", connection.region));
    let url: url::Url = endpoint.parse().map_err(|e| {
        BuildError::other(format!(
            "connection endpoint_url `{endpoint}` is not a valid URL: {e}"
        ))
    })?;
    let path_style = connection
        .path_style
        .unwrap_or(connection.endpoint_url.is_some());
    let style = if path_style {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    Bucket::new(url, style, name.to_owned(), connection.region.clone()).map_err(|e| {
        BuildError::other(format!(
            "connection endpoint_url `{endpoint}` cannot address bucket `{name}`: {e}"
        ))
    })
}

fn content_type(value: &str) -> Result<HeaderValue, BuildError> {
    HeaderValue::from_str(value)
        .ok()
        .filter(|v| v.to_str().is_ok() && !value.is_empty())
        .ok_or_else(|| BuildError::key("content_type", "is not a valid Content-Type"))
}
