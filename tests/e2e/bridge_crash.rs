//! `fjord bridge` killed with SIGKILL again and again during a run loses nothing: every message
//! published with QoS 1 ends up in Kafka (at least once; the duplicates are counted and reported).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fjord_core::config::KafkaConfig;
use fjord_core::time::now_ms;
use fjord_testkit::{Mosquitto, Tansu, kafka, mqtt, temp_dir, unique_name};

fn start_bridge(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["bridge", "--config"])
        .arg(config)
        .env_remove("FJORD_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fjord bridge")
}

fn write_config(path: &Path, mosquitto: &Mosquitto, kafka: &KafkaConfig) {
    let text = format!(
        "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 3\n\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"{}\"\n\n[bridge]\nmax_in_flight = 2000\n",
        kafka.brokers,
        kafka.topic_prefix,
        mosquitto.url(),
        unique_name("bridge")
    );
    std::fs::write(path, text).unwrap();
}

fn n_of(payload: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(payload).unwrap()["n"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_loses_nothing() {
    let mosquitto = Mosquitto::start_recommended().unwrap_or_else(|e| panic!("{e}"));
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka_cfg = tansu.kafka_config();
    let dir = temp_dir();
    let config = dir.path().join("fjord.toml");
    let log = dir.path().join("bridge.log");
    write_config(&config, &mosquitto, &kafka_cfg);

    let mut bridge = start_bridge(&config, &log);
    // wait until a probe goes all the way through: the bridge's session and subscription exist
    let probe = unique_name("gw");
    let mut flowing = false;
    for _ in 0..60 {
        mqtt::publish_all(
            mosquitto.port(),
            None,
            &unique_name("p"),
            vec![(format!("presence/{probe}"), b"online".to_vec())],
            Duration::from_secs(10),
        )
        .await;
        let got = kafka::collect(
            &kafka_cfg,
            &kafka_cfg.topic("presence"),
            Duration::from_millis(1500),
            |r| !r.is_empty(),
        )
        .await;
        if !got.is_empty() {
            flowing = true;
            break;
        }
    }
    assert!(
        flowing,
        "the bridge never forwarded the probe; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // 4 publishers × 25,000 readings, paced so that the run outlasts the kills
    let total = 100_000usize;
    let base = now_ms() - 3_600_000;
    let port = mosquitto.port();
    let mut publishers = Vec::new();
    for p in 0..4usize {
        publishers.push(tokio::spawn(async move {
            for slice in 0..25 {
                let msgs: Vec<(String, Vec<u8>)> = (0..1000)
                    .map(|i| {
                        let n = p * 1_000_000 + slice * 1000 + i;
                        (
                            format!("parking/L{p}/S{}", i % 300),
                            format!(
                                r#"{{"ts":{},"occupied":{},"n":{n}}}"#,
                                base + n as i64,
                                i % 2 == 0
                            )
                            .into_bytes(),
                        )
                    })
                    .collect();
                mqtt::publish_all(
                    port,
                    None,
                    &unique_name("pub"),
                    msgs,
                    Duration::from_secs(120),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    let started = Instant::now();
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        bridge.kill().unwrap(); // SIGKILL
        bridge.wait().unwrap();
        println!("SIGKILL {kill} at {:?}", started.elapsed());
        bridge = start_bridge(&config, &log);
    }
    for p in publishers {
        p.await.unwrap();
    }
    let expected: Vec<u64> = (0..4u64)
        .flat_map(|p| (0..25_000u64).map(move |i| p * 1_000_000 + i))
        .collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    let records = kafka::collect(
        &kafka_cfg,
        &kafka_cfg.topic("readings"),
        Duration::from_secs(300),
        |r| {
            if let Some(last) = r.last() {
                *counts.entry(n_of(&last.payload)).or_default() += 1;
            }
            counts.len() >= total
        },
    )
    .await;
    bridge.kill().unwrap();
    bridge.wait().unwrap();
    let missing: Vec<&u64> = expected
        .iter()
        .filter(|n| !counts.contains_key(n))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} messages missing after 5 SIGKILLs (e.g. {missing:?}); bridge log:\n{}",
        total - counts.len(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let duplicates = records.len() - total;
    println!(
        "5 × SIGKILL: all {total} messages in Kafka; {} records, {duplicates} duplicates ({:.2} %)",
        records.len(),
        100.0 * duplicates as f64 / total as f64
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`: (ca, cert, key).
fn tls_files(dir: &Path, name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let path = |f: &str| dir.join(format!("{name}-{f}.pem")).display().to_string();
    std::fs::write(path("ca"), ca.pem()).unwrap();
    std::fs::write(path("cert"), cert.pem()).unwrap();
    std::fs::write(path("key"), key.serialize_pem()).unwrap();
    (path("ca"), path("cert"), path("key"))
}

/// `mqtts://`: the bridge reads from a mosquitto listener that speaks only TLS, trusting the CA of
/// `mqtt.ca_file`. With a CA that did not sign the broker's certificate it refuses the broker,
/// says why in its log and forwards nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reads_over_tls_and_refuses_a_broker_it_cannot_verify() {
    let dir = temp_dir();
    let (ca, cert, key) = tls_files(dir.path(), "broker");
    let (other_ca, _, _) = tls_files(dir.path(), "other");
    // the first listener (the one `port()` names) speaks TLS; devices publish on a plain one
    let plain = fjord_testkit::free_port();
    let mosquitto = Mosquitto::start_with(&format!(
        "cafile {ca}\ncertfile {cert}\nkeyfile {key}\nlistener {plain} 127.0.0.1\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let kafka_cfg = tansu.kafka_config();
    let config = |trust: &str| {
        format!(
            "[log]\nlevel = \"info\"\n\n[kafka]\nbrokers = \"{}\"\ntopic_prefix = \"{}\"\npartitions = 1\n\n\
             [mqtt]\nurl = \"mqtts://127.0.0.1:{}\"\nclient_id = \"{}\"\nca_file = \"{trust}\"\n\n[bridge]\nhttp_listen = \"127.0.0.1:0\"\n",
            kafka_cfg.brokers,
            kafka_cfg.topic_prefix,
            mosquitto.port(),
            unique_name("bridge")
        )
    };

    // a CA that did not sign the broker's certificate: refused, with the reason in the log
    let (wrong, wrong_log) = (dir.path().join("wrong.toml"), dir.path().join("wrong.log"));
    std::fs::write(&wrong, config(&other_ca)).unwrap();
    let mut bridge = start_bridge(&wrong, &wrong_log);
    let said = fjord_testkit::wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&wrong_log)
            .is_ok_and(|l| l.contains("TLS handshake with 127.0.0.1"))
    });
    let _ = bridge.kill();
    let _ = bridge.wait();
    let log = std::fs::read_to_string(&wrong_log).unwrap_or_default();
    assert!(said, "no TLS refusal in the log:\n{log}");
    assert!(
        log.contains("UnknownIssuer") || log.contains("certificate"),
        "{log}"
    );

    // the right CA: readings published on the plain listener reach Kafka through the TLS session
    let (good, good_log) = (dir.path().join("good.toml"), dir.path().join("good.log"));
    std::fs::write(&good, config(&ca)).unwrap();
    let mut bridge = start_bridge(&good, &good_log);
    let topic = kafka_cfg.topic("readings");
    let mut got = Vec::new();
    for n in 0..60 {
        mqtt::publish_all(
            plain,
            None,
            &unique_name("device"),
            vec![(
                format!("parking/tls/S{n}"),
                format!(r#"{{"occupied":true,"n":{n}}}"#).into_bytes(),
            )],
            Duration::from_secs(10),
        )
        .await;
        got = kafka::collect(&kafka_cfg, &topic, Duration::from_millis(1500), |r| {
            !r.is_empty()
        })
        .await;
        if !got.is_empty() {
            break;
        }
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
    let log = std::fs::read_to_string(&good_log).unwrap_or_default();
    assert!(!got.is_empty(), "nothing reached Kafka over TLS:\n{log}");
    assert!(log.contains("connected to the MQTT broker"), "{log}");
    assert!(!log.contains("TLS handshake"), "{log}");
}
