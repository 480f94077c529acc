//! Just enough of the MQTT wire format (3.1, 3.1.1 and 5) for the embedded broker's front and the
//! bridge's own client: framing, CONNECT (parsed, and re-encoded with other credentials), PUBLISH
//! (topic, QoS, packet id, content type, topic alias, payload), SUBSCRIBE/SUBACK, CONNACK, PUBACK
//! and the refusal packets. Pure functions over bytes.

use bytes::{BufMut, Bytes, BytesMut};

/// Packet types (the high nibble of the first byte).
pub mod kind {
    /// CONNECT
    pub const CONNECT: u8 = 1;
    /// CONNACK
    pub const CONNACK: u8 = 2;
    /// PUBLISH
    pub const PUBLISH: u8 = 3;
    /// PUBACK
    pub const PUBACK: u8 = 4;
    /// PUBREL
    pub const PUBREL: u8 = 6;
    /// SUBSCRIBE
    pub const SUBSCRIBE: u8 = 8;
    /// SUBACK
    pub const SUBACK: u8 = 9;
    /// PINGRESP
    pub const PINGRESP: u8 = 13;
    /// DISCONNECT
    pub const DISCONNECT: u8 = 14;
}

/// A malformed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed MQTT packet: {0}")]
pub struct PacketError(pub &'static str);

type R<T> = Result<T, PacketError>;

/// One packet: its first byte and its body (everything after the remaining length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Type (high nibble) and flags (low nibble).
    pub first: u8,
    /// The variable header and payload.
    pub body: Bytes,
}

impl Frame {
    /// The packet type.
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }

    /// The packet as bytes on the wire.
    pub fn encode(&self) -> Bytes {
        encode(self.first, &self.body)
    }
}

/// Encodes a packet: first byte, remaining length, body.
pub fn encode(first: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(first);
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if len == 0 {
            break;
        }
    }
    out.put_slice(body);
    out.freeze()
}

/// The fixed header at the start of `buf`: its length and the body's. `Ok(None)`: incomplete.
fn fixed_header(buf: &[u8]) -> R<Option<(usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return Ok(Some((i, len)));
        }
        shift += 7;
        if shift > 21 {
            return Err(PacketError("remaining length longer than 4 bytes"));
        }
    }
}

/// Length of the longest prefix of `buf` made of whole packets (a relay passes on whole packets
/// only, so that packets of its own can go in between).
pub fn whole_packets_len(buf: &[u8]) -> R<usize> {
    let mut at = 0;
    while let Some((header, body)) = fixed_header(&buf[at..])? {
        if buf.len() - at < header + body {
            break;
        }
        at += header + body;
    }
    Ok(at)
}

/// Splits the next complete packet off the front of `buf`. `Ok(None)`: more bytes are needed.
pub fn split_frame(buf: &mut BytesMut, max_body: usize) -> R<Option<Frame>> {
    let Some((i, len)) = fixed_header(buf)? else {
        return Ok(None);
    };
    if len > max_body {
        return Err(PacketError("packet larger than the broker accepts"));
    }
    if buf.len() < i + len {
        buf.reserve(i + len - buf.len());
        return Ok(None);
    }
    let first = buf[0];
    let mut packet = buf.split_to(i + len);
    let body = packet.split_off(i).freeze();
    Ok(Some(Frame { first, body }))
}

/// A reader over a packet body.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> R<u8> {
        let v = *self.b.get(self.at).ok_or(PacketError("truncated"))?;
        self.at += 1;
        Ok(v)
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or(PacketError("truncated"))?;
        self.at += n;
        Ok(s)
    }
    fn binary(&mut self) -> R<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn string(&mut self) -> R<String> {
        String::from_utf8(self.binary()?.to_vec()).map_err(|_| PacketError("string is not UTF-8"))
    }
    fn varint(&mut self) -> R<usize> {
        let mut v = 0usize;
        for shift in [0, 7, 14, 21] {
            let b = self.u8()?;
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PacketError("variable integer longer than 4 bytes"))
    }
    /// MQTT 5 properties: returns their raw bytes (without the length).
    fn properties(&mut self) -> R<&'a [u8]> {
        let n = self.varint()?;
        self.take(n)
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.at.min(self.b.len())..]
    }
}

/// A will message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// MQTT 5 will properties, raw.
    pub properties: Bytes,
    /// Will topic.
    pub topic: String,
    /// Will payload.
    pub payload: Bytes,
}

/// A parsed CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `MQTT` or `MQIsdp`.
    pub protocol_name: String,
    /// 3 (3.1), 4 (3.1.1) or 5.
    pub level: u8,
    /// Clean session / clean start.
    pub clean: bool,
    /// Will QoS and retain bits as in the flags byte (bits 3–5).
    pub will_bits: u8,
    /// Keep-alive, seconds.
    pub keep_alive: u16,
    /// MQTT 5 properties, raw.
    pub properties: Bytes,
    /// Client identifier.
    pub client_id: String,
    /// Will, if any.
    pub will: Option<Will>,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
}

impl Connect {
    /// True for MQTT 5.
    pub fn is_v5(&self) -> bool {
        self.level == 5
    }
}

/// Parses a CONNECT body.
pub fn parse_connect(body: &[u8]) -> R<Connect> {
    let mut c = Cursor { b: body, at: 0 };
    let protocol_name = c.string()?;
    let level = c.u8()?;
    let flags = c.u8()?;
    let keep_alive = c.u16()?;
    let properties = if level == 5 {
        Bytes::copy_from_slice(c.properties()?)
    } else {
        Bytes::new()
    };
    let client_id = c.string()?;
    let will = if flags & 0x04 != 0 {
        let properties = if level == 5 {
            Bytes::copy_from_slice(c.properties()?)
        } else {
            Bytes::new()
        };
        let topic = c.string()?;
        let payload = Bytes::copy_from_slice(c.binary()?);
        Some(Will {
            properties,
            topic,
            payload,
        })
    } else {
        None
    };
    let username = if flags & 0x80 != 0 {
        Some(c.string()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(Bytes::copy_from_slice(c.binary()?))
    } else {
        None
    };
    Ok(Connect {
        protocol_name,
        level,
        clean: flags & 0x02 != 0,
        will_bits: flags & 0x38,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

fn put_binary(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn put_varint(out: &mut BytesMut, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if n == 0 {
            break;
        }
    }
}

/// Encodes a CONNECT packet.
pub fn encode_connect(c: &Connect) -> Bytes {
    let mut body = BytesMut::new();
    put_binary(&mut body, c.protocol_name.as_bytes());
    body.put_u8(c.level);
    let mut flags = c.will_bits & 0x38;
    if c.clean {
        flags |= 0x02;
    }
    if c.will.is_some() {
        flags |= 0x04;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    body.put_u8(flags);
    body.put_u16(c.keep_alive);
    if c.is_v5() {
        put_varint(&mut body, c.properties.len());
        body.put_slice(&c.properties);
    }
    put_binary(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if c.is_v5() {
            put_varint(&mut body, w.properties.len());
            body.put_slice(&w.properties);
        }
        put_binary(&mut body, w.topic.as_bytes());
        put_binary(&mut body, &w.payload);
    }
    if let Some(u) = &c.username {
        put_binary(&mut body, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_binary(&mut body, p);
    }
    encode(kind::CONNECT << 4, &body)
}

/// A parsed PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Topic as sent (empty when an MQTT 5 topic alias stands for it).
    pub topic: String,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Redelivery flag.
    pub dup: bool,
    /// Packet id (QoS > 0).
    pub pkid: u16,
    /// MQTT 5 topic alias, if any.
    pub alias: Option<u16>,
    /// MQTT 5 content type, if any.
    pub content_type: Option<String>,
    /// Payload.
    pub payload: Bytes,
}

/// Parses a PUBLISH (`first` is its first byte).
pub fn parse_publish(first: u8, body: &Bytes, v5: bool) -> R<Publish> {
    let qos = (first >> 1) & 0x03;
    if qos == 3 {
        return Err(PacketError("QoS 3 does not exist"));
    }
    let mut c = Cursor { b: body, at: 0 };
    let topic = c.string()?;
    let pkid = if qos > 0 { c.u16()? } else { 0 };
    let props = if v5 {
        properties(c.properties()?)?
    } else {
        Props::default()
    };
    let at = c.at.min(body.len());
    Ok(Publish {
        topic,
        qos,
        dup: first & 0x08 != 0,
        pkid,
        alias: props.alias,
        content_type: props.content_type,
        payload: body.slice(at..),
    })
}

#[derive(Default)]
struct Props {
    alias: Option<u16>,
    content_type: Option<String>,
}

/// Reads the MQTT 5 properties fjord uses (topic alias 0x23, content type 0x03), skipping others.
fn properties(props: &[u8]) -> R<Props> {
    let mut c = Cursor { b: props, at: 0 };
    let mut out = Props::default();
    while !c.rest().is_empty() {
        let id = c.varint()?;
        match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                c.u8()?;
            }
            0x13 | 0x21 | 0x22 => {
                c.u16()?;
            }
            0x23 => out.alias = Some(c.u16()?),
            0x02 | 0x11 | 0x18 | 0x27 => {
                c.take(4)?;
            }
            0x0B => {
                c.varint()?;
            }
            0x03 => out.content_type = Some(c.string()?),
            0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                c.binary()?;
            }
            0x26 => {
                c.binary()?;
                c.binary()?;
            }
            _ => return Err(PacketError("unknown property")),
        }
    }
    Ok(out)
}

/// Reads the packet id and filters of a SUBSCRIBE.
pub fn parse_subscribe(body: &[u8], v5: bool) -> R<(u16, Vec<String>)> {
    let mut c = Cursor { b: body, at: 0 };
    let pkid = c.u16()?;
    if v5 {
        c.properties()?;
    }
    let mut filters = Vec::new();
    while !c.rest().is_empty() {
        filters.push(c.string()?);
        c.u8()?;
    }
    if filters.is_empty() {
        return Err(PacketError("SUBSCRIBE without filters"));
    }
    Ok((pkid, filters))
}

/// The packet id of a PUBREL.
pub fn parse_pkid(body: &[u8]) -> R<u16> {
    Cursor { b: body, at: 0 }.u16()
}

/// Reads a CONNACK: (session present, return or reason code).
pub fn parse_connack(body: &[u8]) -> R<(bool, u8)> {
    let mut c = Cursor { b: body, at: 0 };
    let flags = c.u8()?;
    let code = c.u8()?;
    Ok((flags & 0x01 != 0, code))
}

/// Encodes a SUBSCRIBE of `filters` at `qos`.
pub fn encode_subscribe(pkid: u16, filters: &[String], qos: u8, v5: bool) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u16(pkid);
    if v5 {
        body.put_u8(0);
    }
    for f in filters {
        put_binary(&mut body, f.as_bytes());
        body.put_u8(qos & 0x03);
    }
    encode((kind::SUBSCRIBE << 4) | 0x02, &body)
}

/// Reads a SUBACK: (packet id, one return/reason code per filter).
pub fn parse_suback(body: &[u8], v5: bool) -> R<(u16, Vec<u8>)> {
    let mut c = Cursor { b: body, at: 0 };
    let pkid = c.u16()?;
    if v5 {
        c.properties()?;
    }
    Ok((pkid, c.rest().to_vec()))
}

/// Appends a PUBACK (success) to `out`.
pub fn put_puback(out: &mut BytesMut, pkid: u16) {
    out.put_u8(kind::PUBACK << 4);
    out.put_u8(2);
    out.put_u16(pkid);
}

/// PUBACK (success) of a QoS 1 PUBLISH.
pub fn puback(pkid: u16) -> Bytes {
    encode(kind::PUBACK << 4, &pkid.to_be_bytes())
}

/// PUBREC (success) of a QoS 2 PUBLISH.
pub fn pubrec(pkid: u16) -> Bytes {
    encode(0x50, &pkid.to_be_bytes())
}

/// The PUBLISH `first` + `body` re-encoded at QoS 0: no packet id, no DUP flag; topic, RETAIN,
/// properties and payload unchanged.
pub fn publish_at_qos0(first: u8, body: &[u8]) -> R<Bytes> {
    if (first >> 1) & 0x03 == 0 {
        return Ok(encode(first, body));
    }
    let topic_len = body
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(PacketError("PUBLISH too short"))?;
    let pkid_at = 2 + topic_len;
    if body.len() < pkid_at + 2 {
        return Err(PacketError("PUBLISH too short"));
    }
    let mut out = BytesMut::with_capacity(body.len());
    out.put_slice(&body[..pkid_at]);
    out.put_slice(&body[pkid_at + 2..]);
    Ok(encode(first & 0xF1, &out))
}

/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];

/// DISCONNECT (normal disconnection, valid in every version).
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// MQTT 5 CONNECT properties: session expiry (s), receive maximum, maximum packet size.
pub fn connect_properties(session_expiry: u32, receive_max: u16, max_packet: u32) -> Bytes {
    let mut p = BytesMut::new();
    p.put_u8(0x11);
    p.put_u32(session_expiry);
    p.put_u8(0x21);
    p.put_u16(receive_max);
    p.put_u8(0x27);
    p.put_u32(max_packet);
    p.freeze()
}

/// CONNACK refusing the connection: `bad_credentials` (3.1.1: 4, MQTT 5: 0x86) or not authorised
/// (5 / 0x87).
pub fn connack_refused(v5: bool, bad_credentials: bool) -> Bytes {
    if v5 {
        let code = if bad_credentials { 0x86 } else { 0x87 };
        encode(0x20, &[0x00, code, 0x00])
    } else {
        let code = if bad_credentials { 4 } else { 5 };
        encode(0x20, &[0x00, code])
    }
}

/// CONNACK refusing the client id (MQTT 5: "client identifier not valid"; 3.1.1: "identifier
/// rejected").
pub fn connack_id_rejected(v5: bool) -> Bytes {
    if v5 {
        encode(0x20, &[0x00, 0x85, 0x00])
    } else {
        encode(0x20, &[0x00, 0x02])
    }
}

/// CONNACK for an unsupported protocol level.
pub fn connack_bad_protocol() -> Bytes {
    encode(0x20, &[0x00, 0x01])
}

/// PUBACK (QoS 1) or PUBREC (QoS 2) refusing a PUBLISH: MQTT 5 says "not authorized" (0x87);
/// MQTT 3.1.1 has no refusal, so the message is acknowledged and dropped (as mosquitto does).
pub fn publish_refused(qos: u8, pkid: u16, v5: bool) -> Bytes {
    let first = if qos == 1 { 0x40 } else { 0x50 };
    let [hi, lo] = pkid.to_be_bytes();
    if v5 {
        encode(first, &[hi, lo, 0x87])
    } else {
        encode(first, &[hi, lo])
    }
}

/// PUBCOMP closing a refused QoS 2 exchange of MQTT 3.1.1.
pub fn pubcomp(pkid: u16) -> Bytes {
    encode(0x70, &pkid.to_be_bytes())
}

/// SUBACK refusing every filter of a SUBSCRIBE.
pub fn suback_refused(pkid: u16, filters: usize, v5: bool) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u16(pkid);
    if v5 {
        body.put_u8(0);
    }
    for _ in 0..filters {
        body.put_u8(if v5 { 0x87 } else { 0x80 });
    }
    encode(0x90, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Frame {
        let mut buf = BytesMut::from(bytes);
        let f = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(buf.is_empty());
        f
    }

    fn connect(level: u8, will: bool) -> Connect {
        Connect {
            protocol_name: "MQTT".into(),
            level,
            clean: false,
            will_bits: if will { 0x08 | 0x20 } else { 0 },
            keep_alive: 30,
            properties: if level == 5 {
                Bytes::from_static(&[0x11, 0, 0, 0x0e, 0x10])
            } else {
                Bytes::new()
            },
            client_id: "gw-1".into(),
            will: will.then(|| Will {
                properties: if level == 5 {
                    Bytes::from_static(&[0x18, 0, 0, 0, 5])
                } else {
                    Bytes::new()
                },
                topic: "presence/gw-1".into(),
                payload: Bytes::from_static(b"offline"),
            }),
            username: Some("gw-1".into()),
            password: Some(Bytes::from_static(b"secret")),
        }
    }

    #[test]
    fn connect_round_trips_in_every_version() {
        for level in [4, 5] {
            for will in [false, true] {
                let c = connect(level, will);
                let f = frame(&encode_connect(&c));
                assert_eq!(f.kind(), kind::CONNECT);
                assert_eq!(parse_connect(&f.body).unwrap(), c);
            }
        }
    }

    #[test]
    fn framing_waits_for_whole_packets_and_handles_long_lengths() {
        let body = vec![7u8; 300];
        let bytes = encode(0x30, &body);
        assert_eq!(&bytes[..3], &[0x30, 0xAC, 0x02]);
        let mut buf = BytesMut::from(&bytes[..100]);
        assert_eq!(split_frame(&mut buf, 1 << 20).unwrap(), None);
        buf.extend_from_slice(&bytes[100..]);
        buf.extend_from_slice(&[0xC0, 0x00]); // and a PINGREQ behind it
        let f = split_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!((f.first, f.body.len()), (0x30, 300));
        assert_eq!(split_frame(&mut buf, 1 << 20).unwrap().unwrap().first, 0xC0);
        let mut big = BytesMut::from(&bytes[..]);
        assert!(split_frame(&mut big, 100).is_err());
        let mut bad = BytesMut::from(&[0x30u8, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert!(split_frame(&mut bad, usize::MAX).is_err());
    }

    #[test]
    fn publish_topic_qos_pkid_and_alias() {
        // v3.1.1 QoS 1
        let mut body = BytesMut::new();
        put_binary(&mut body, b"parking/A/S1");
        body.put_u16(7);
        body.put_slice(b"{}");
        let p = parse_publish(0x3A, &body.freeze(), false).unwrap();
        assert_eq!(
            (p.topic.as_str(), p.qos, p.pkid, p.alias, p.dup),
            ("parking/A/S1", 1, 7, None, true)
        );
        assert_eq!(&p.payload[..], b"{}");
        // v5 QoS 0 with content type and topic alias
        let mut body = BytesMut::new();
        put_binary(&mut body, b"");
        let mut props = BytesMut::new();
        props.put_u8(0x03);
        put_binary(&mut props, b"application/json");
        props.put_u8(0x23);
        props.put_u16(4);
        put_varint(&mut body, props.len());
        body.put_slice(&props);
        body.put_slice(b"[1]");
        let body = body.freeze();
        let p = parse_publish(0x30, &body, true).unwrap();
        assert_eq!((p.topic.as_str(), p.qos, p.alias), ("", 0, Some(4)));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(&p.payload[..], b"[1]");
        assert!(parse_publish(0x36, &body, true).is_err(), "QoS 3");
    }

    #[test]
    fn subscribe_filters_and_refusals() {
        let mut body = BytesMut::new();
        body.put_u16(9);
        body.put_u8(0);
        put_binary(&mut body, b"parking/#");
        body.put_u8(1);
        put_binary(&mut body, b"presence/+");
        body.put_u8(1);
        let (pkid, filters) = parse_subscribe(&body, true).unwrap();
        assert_eq!(
            (pkid, filters),
            (9, vec!["parking/#".to_owned(), "presence/+".to_owned()])
        );
        assert_eq!(
            &suback_refused(9, 2, true)[..],
            &[0x90, 5, 0, 9, 0, 0x87, 0x87]
        );
        assert_eq!(&suback_refused(9, 1, false)[..], &[0x90, 3, 0, 9, 0x80]);
        assert_eq!(
            &publish_refused(1, 0x0102, true)[..],
            &[0x40, 3, 1, 2, 0x87]
        );
        assert_eq!(&publish_refused(2, 0x0102, false)[..], &[0x50, 2, 1, 2]);
        assert_eq!(&connack_refused(false, true)[..], &[0x20, 2, 0, 4]);
        assert_eq!(&connack_refused(true, false)[..], &[0x20, 3, 0, 0x87, 0]);
    }

    #[test]
    fn subscribe_suback_connack_round_trip() {
        let f = frame(&encode_subscribe(3, &["a/#".into(), "b/+".into()], 1, true));
        assert_eq!(f.first, 0x82);
        let (pkid, filters) = parse_subscribe(&f.body, true).unwrap();
        assert_eq!((pkid, filters.len()), (3, 2));
        assert_eq!(
            parse_suback(&[0, 3, 0, 1, 0x80], true).unwrap(),
            (3, vec![1, 0x80])
        );
        assert_eq!(parse_connack(&[1, 0]).unwrap(), (true, 0));
        let mut out = BytesMut::new();
        put_puback(&mut out, 0x0102);
        assert_eq!(&out[..], &[0x40, 2, 1, 2]);
    }

    #[test]
    fn a_publish_re_encoded_at_qos_0_keeps_topic_properties_payload_and_retain() {
        let mut body = BytesMut::new();
        put_binary(&mut body, b"parking/A/S1");
        body.put_u16(7);
        body.put_u8(0); // no properties
        body.put_slice(b"{}");
        let body = body.freeze();
        // QoS 1, DUP, RETAIN
        let f = frame(&publish_at_qos0(0x3B, &body).unwrap());
        assert_eq!(f.first, 0x31);
        let p = parse_publish(f.first, &f.body, true).unwrap();
        assert_eq!((p.topic.as_str(), p.qos, p.dup), ("parking/A/S1", 0, false));
        assert_eq!(&p.payload[..], b"{}");
        // QoS 0 passes unchanged; a body cut inside its packet id is refused
        assert_eq!(&publish_at_qos0(0x30, b"\0\x01a").unwrap()[..2], &[0x30, 3]);
        assert!(publish_at_qos0(0x32, &body[..15]).is_err());
        assert_eq!(&puback(0x0102)[..], &[0x40, 2, 1, 2]);
        assert_eq!(&pubrec(0x0102)[..], &[0x50, 2, 1, 2]);
    }

    #[test]
    fn whole_packets_len_stops_before_a_cut_packet() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&puback(1));
        buf.extend_from_slice(&encode(0x30, &[0u8; 200])); // two-byte remaining length
        let whole = buf.len();
        buf.extend_from_slice(&puback(2)[..3]);
        assert_eq!(whole_packets_len(&buf).unwrap(), whole);
        assert_eq!(whole_packets_len(&buf[..whole - 1]).unwrap(), 4);
        assert_eq!(
            whole_packets_len(&buf[..5]).unwrap(),
            4,
            "cut inside the length"
        );
        assert_eq!(whole_packets_len(&[]).unwrap(), 0);
        assert!(whole_packets_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), first in 0u8..=255) {
            let b = Bytes::from(bytes.clone());
            let _ = parse_connect(&bytes);
            let _ = parse_publish(first, &b, true);
            let _ = parse_publish(first, &b, false);
            let _ = parse_subscribe(&bytes, true);
            let _ = parse_suback(&bytes, true);
            let _ = parse_connack(&bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = split_frame(&mut buf, 1 << 16) {}
            let _ = whole_packets_len(&bytes);
            let _ = publish_at_qos0(first, &bytes);
        }
    }
}
