//! The agent ⇄ holder protocol on a holder's unix socket: length-prefixed
//! messages, `[tag: u8][length: u32 BE][payload]`. Terminal bytes travel as they
//! are (no JSON, no base64); only `Info` carries JSON.
//!
//! A connection starts with the client's `Hello`: a *viewer* gets the scrollback,
//! `Ready`, then live output; a *control* connection gets `Info` and `Exit` only.
//! `VERSION` lets an agent and the holders of an older agent tell each other apart.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const VERSION: u8 = 1;
/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Client → holder, first: protocol version and whether this is a viewer.
    Hello {
        version: u8,
        viewer: bool,
    },
    /// Holder → viewer: terminal output.
    Output(Bytes),
    /// Holder → viewer: the scrollback has been sent.
    Ready,
    /// Holder → client: the process ended (status, or 128 + signal).
    Exit(i32),
    /// Holder → viewer: it fell too far behind and is disconnected.
    TooSlow,
    /// Holder → client: a request failed.
    Error(String),
    /// Holder → client: what the holder holds, as JSON.
    Info(Bytes),
    /// Client → holder.
    Input(Bytes),
    Resize {
        cols: u16,
        rows: u16,
    },
    /// End the process (SIGHUP, then SIGKILL).
    Kill,
    /// The agent no longer lists the terminal: once it has exited, go.
    Release,
    InfoRequest,
    // Sessions (see `holders::session`).
    /// Client → holder: attach with this mode (JSON `{takeover, watch, since}`).
    Attach(Bytes),
    /// Holder → client: the attach is refused (JSON `{code, message}`).
    Refused(Bytes),
    /// Holder → client: a text frame for the session socket, as it goes out.
    Frame(Bytes),
    /// Holder → client: close the session socket with this code.
    Close(u16),
    /// Client → holder: a client frame from the session socket (JSON text).
    Client(Bytes),
    /// Holder → control: an event to record (JSON).
    Event(Bytes),
    /// Control → holder: end the session (JSON stop reason).
    Stop(Bytes),
}

const HELLO: u8 = 1;
const OUTPUT: u8 = 2;
const READY: u8 = 3;
const EXIT: u8 = 4;
const TOO_SLOW: u8 = 5;
const ERROR: u8 = 6;
const INFO: u8 = 7;
const INPUT: u8 = 8;
const RESIZE: u8 = 9;
const KILL: u8 = 10;
const RELEASE: u8 = 11;
const INFO_REQUEST: u8 = 12;
const ATTACH: u8 = 13;
const REFUSED: u8 = 14;
const FRAME: u8 = 15;
const CLOSE: u8 = 16;
const CLIENT: u8 = 17;
const EVENT: u8 = 18;
const STOP: u8 = 19;

#[derive(Debug, Default)]
pub struct Codec;

impl Encoder<Msg> for Codec {
    type Error = std::io::Error;

    fn encode(&mut self, msg: Msg, dst: &mut BytesMut) -> Result<(), Self::Error> {
        let mut put = |tag: u8, payload: &[u8]| {
            dst.reserve(5 + payload.len());
            dst.put_u8(tag);
            dst.put_u32(payload.len() as u32);
            dst.extend_from_slice(payload);
        };
        match msg {
            Msg::Hello { version, viewer } => put(HELLO, &[version, viewer as u8]),
            Msg::Output(b) => put(OUTPUT, &b),
            Msg::Ready => put(READY, &[]),
            Msg::Exit(code) => put(EXIT, &code.to_be_bytes()),
            Msg::TooSlow => put(TOO_SLOW, &[]),
            Msg::Error(m) => put(ERROR, m.as_bytes()),
            Msg::Info(j) => put(INFO, &j),
            Msg::Input(b) => put(INPUT, &b),
            Msg::Resize { cols, rows } => {
                let mut p = [0u8; 4];
                p[..2].copy_from_slice(&cols.to_be_bytes());
                p[2..].copy_from_slice(&rows.to_be_bytes());
                put(RESIZE, &p)
            }
            Msg::Kill => put(KILL, &[]),
            Msg::Release => put(RELEASE, &[]),
            Msg::InfoRequest => put(INFO_REQUEST, &[]),
            Msg::Attach(j) => put(ATTACH, &j),
            Msg::Refused(j) => put(REFUSED, &j),
            Msg::Frame(j) => put(FRAME, &j),
            Msg::Close(code) => put(CLOSE, &code.to_be_bytes()),
            Msg::Client(j) => put(CLIENT, &j),
            Msg::Event(j) => put(EVENT, &j),
            Msg::Stop(j) => put(STOP, &j),
        }
        Ok(())
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Decoder for Codec {
    type Item = Msg;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Msg>, Self::Error> {
        if src.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(bad("holder message too large"));
        }
        if src.len() < 5 + len {
            src.reserve(5 + len - src.len());
            return Ok(None);
        }
        let tag = src[0];
        src.advance(5);
        let p = src.split_to(len).freeze();
        let msg = match tag {
            HELLO if p.len() == 2 => Msg::Hello {
                version: p[0],
                viewer: p[1] != 0,
            },
            OUTPUT => Msg::Output(p),
            READY => Msg::Ready,
            EXIT if p.len() == 4 => Msg::Exit(i32::from_be_bytes([p[0], p[1], p[2], p[3]])),
            TOO_SLOW => Msg::TooSlow,
            ERROR => Msg::Error(String::from_utf8_lossy(&p).into_owned()),
            INFO => Msg::Info(p),
            INPUT => Msg::Input(p),
            RESIZE if p.len() == 4 => Msg::Resize {
                cols: u16::from_be_bytes([p[0], p[1]]),
                rows: u16::from_be_bytes([p[2], p[3]]),
            },
            KILL => Msg::Kill,
            RELEASE => Msg::Release,
            INFO_REQUEST => Msg::InfoRequest,
            ATTACH => Msg::Attach(p),
            REFUSED => Msg::Refused(p),
            FRAME => Msg::Frame(p),
            CLOSE if p.len() == 2 => Msg::Close(u16::from_be_bytes([p[0], p[1]])),
            CLIENT => Msg::Client(p),
            EVENT => Msg::Event(p),
            STOP => Msg::Stop(p),
            _ => return Err(bad("unknown holder message")),
        };
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_split_anywhere() {
        let msgs = vec![
            Msg::Hello {
                version: VERSION,
                viewer: true,
            },
            Msg::Output(Bytes::from_static(b"\x00\x01\x02 bytes \xff")),
            Msg::Ready,
            Msg::Exit(-3),
            Msg::TooSlow,
            Msg::Error("nope".into()),
            Msg::Info(Bytes::from_static(b"{\"a\":1}")),
            Msg::Input(Bytes::from_static(b"ls\r")),
            Msg::Resize {
                cols: 120,
                rows: 40,
            },
            Msg::Kill,
            Msg::Release,
            Msg::InfoRequest,
            Msg::Attach(Bytes::from_static(b"{}")),
            Msg::Refused(Bytes::from_static(b"{\"code\":\"x\"}")),
            Msg::Frame(Bytes::from_static(b"{\"seq\":1}")),
            Msg::Close(4001),
            Msg::Client(Bytes::from_static(b"{}")),
            Msg::Event(Bytes::from_static(b"{}")),
            Msg::Stop(Bytes::from_static(b"\"user_stop\"")),
        ];
        let mut all = BytesMut::new();
        for m in &msgs {
            Codec.encode(m.clone(), &mut all).unwrap();
        }
        let all = all.freeze();
        for split in [1, 2, 3, 7, all.len()] {
            let mut got = vec![];
            let mut buf = BytesMut::new();
            for chunk in all.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(m) = Codec.decode(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs, "split {split}");
        }
    }

    #[test]
    fn refuses_oversized_and_unknown() {
        let mut buf = BytesMut::from(&[INPUT, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(Codec.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[99u8, 0, 0, 0, 0][..]);
        assert!(Codec.decode(&mut buf).is_err());
    }
}
