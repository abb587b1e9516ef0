//! The RabbitMQ ceiling for bench/destinations.sh: publish persistent 2.2 KB messages to
//! one durable queue with publisher confirms, `CONCURRENCY` in flight over 4 channels, no
//! HTTP in between, with the properties the gateway sends for wrk's requests (three headers,
//! content type, message id). Prints messages/s.
//!
//! `rabbit-ceiling AMQP_URL QUEUE SECONDS CONCURRENCY [QUEUE_VERSION | quorum]` (a queue version
//! declares the queue with `x-queue-version`, `quorum` with `x-queue-type`, as the gateway's
//! `queue_arguments` do).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let queue = args.next().unwrap_or_else(|| "rabbit-ceiling".to_owned());
    let seconds: u64 = args.next().unwrap_or_else(|| "10".to_owned()).parse()?;
    let concurrency: usize = args.next().unwrap_or_else(|| "64".to_owned()).parse()?;
    let mut queue_arguments = FieldTable::default();
    match args.next().as_deref() {
        None => {}
        Some("quorum") => {
            queue_arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        Some(version) => {
            queue_arguments.insert(
                "x-queue-version".into(),
                AMQPValue::LongInt(version.parse()?),
            );
        }
    }
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let mut channels = Vec::new();
    for _ in 0..4 {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.push(channel);
    }
    channels[0]
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            queue_arguments,
        )
        .await?;
    let body = Arc::new(vec![b'x'; 2200]);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let channel = channels[i % channels.len()].clone();
        let (body, done, queue) = (Arc::clone(&body), Arc::clone(&done), queue.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        properties(),
                    )
                    .await;
                if let Ok(confirm) = confirm
                    && matches!(confirm.await, Ok(c) if c.is_ack())
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{:.0}",
            done.load(Ordering::Relaxed) as f64 / seconds as f64
        );
    }
    Ok(())
}

/// What the `rabbitmq` destination sends for one of wrk's requests.
fn properties() -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in [
        ("host", "127.0.0.1:9103"),
        ("content-type", "application/json"),
        ("content-length", "2200"),
    ] {
        headers.insert(
            name.into(),
            AMQPValue::LongString(value.as_bytes().to_vec().into()),
        );
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
        .with_message_id("01a22285-4c75-71c7-ace4-95f53931c9f9".into())
        .with_content_type("application/json".into())
}
