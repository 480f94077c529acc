//! Publishing in tests: many QoS 1 messages from one connection, waiting for every PUBACK.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Publishes `messages` (topic, payload) with QoS 1 from client `client_id` and returns once the
/// broker acknowledged all of them. Panics after `timeout`.
pub async fn publish_all(
    port: u16,
    credentials: Option<(&str, &str)>,
    client_id: &str,
    messages: Vec<(String, Vec<u8>)>,
    timeout: Duration,
) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_request_channel_capacity(2000);
    if let Some((u, p)) = credentials {
        o.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(o, 2000);
    let n = messages.len();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher {n}: connection failed after {acked} acks: {e}"),
            }
        }
        events
    });
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }
    let mut events = tokio::time::timeout(timeout, acks)
        .await
        .unwrap_or_else(|_| panic!("not every message was acknowledged within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while events.poll().await.is_ok() {}
    })
    .await;
}
