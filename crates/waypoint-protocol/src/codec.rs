//! Encoding server messages and decoding client messages for both subprotocols.

use serde::{Deserialize, Serialize};

use crate::messages::{ClientMessage, ErrorCode, RequestId};
use crate::{ProtocolError, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

/// The two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    MsgPack,
    Json,
}

impl Codec {
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name {
            SUBPROTOCOL_MSGPACK => Some(Codec::MsgPack),
            SUBPROTOCOL_JSON => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::MsgPack => SUBPROTOCOL_MSGPACK,
            Codec::Json => SUBPROTOCOL_JSON,
        }
    }
}

/// Encodes any message: MessagePack with named fields, or compact JSON.
pub fn encode<T: Serialize>(codec: Codec, msg: &T) -> Result<Vec<u8>, ProtocolError> {
    match codec {
        Codec::MsgPack => rmp_serde::to_vec_named(msg).map_err(|e| ProtocolError::Encode(e.to_string())),
        Codec::Json => serde_json::to_vec(msg).map_err(|e| ProtocolError::Encode(e.to_string())),
    }
}

/// Decodes a server message (for clients written in Rust: tests, `waypoint bench`).
pub fn decode_server(codec: Codec, bytes: &[u8]) -> Result<crate::messages::ServerMessage, String> {
    parse(codec, bytes)
}

/// Why a client message was refused, with the id to echo when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    ty: Option<String>,
    id: Option<RequestId>,
}

fn parse<'a, T: Deserialize<'a>>(codec: Codec, bytes: &'a [u8]) -> Result<T, String> {
    match codec {
        Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

/// Decodes a client message, distinguishing undecodable input, an unknown `type` and a known
/// type with bad fields, so the error reply can say which.
pub fn decode_client(codec: Codec, bytes: &[u8], max_bytes: usize) -> Result<ClientMessage, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError {
            id: None,
            code: ErrorCode::TooLarge,
            message: format!("message of {} bytes exceeds the limit of {max_bytes}", bytes.len()),
        });
    }
    let env: Envelope = parse(codec, bytes).map_err(|e| DecodeError {
        id: None,
        code: ErrorCode::BadMessage,
        message: format!("not a {} map: {e}", codec.subprotocol()),
    })?;
    let Some(ty) = env.ty else {
        return Err(DecodeError { id: env.id, code: ErrorCode::BadMessage, message: "missing `type`".into() });
    };
    if !ClientMessage::TYPES.contains(&ty.as_str()) {
        return Err(DecodeError {
            id: env.id,
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {ty:?}; expected one of {:?}", ClientMessage::TYPES),
        });
    }
    parse(codec, bytes).map_err(|e| DecodeError { id: env.id, code: ErrorCode::BadMessage, message: e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Command, StreamName};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// No byte string makes the decoder panic, in either codec; what it refuses is
        /// classified.
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for codec in [Codec::MsgPack, Codec::Json] {
                if let Err(e) = decode_client(codec, &bytes, 256) {
                    prop_assert!(!e.message.is_empty());
                }
            }
        }

        /// Valid messages with a corrupted byte either decode or are refused, never panic.
        #[test]
        fn corrupted_valid_messages_are_handled(seed in 0u64..1000, pos in 0usize..200, byte in any::<u8>()) {
            let msg = ClientMessage::Command { id: RequestId::Num(seed), command: Command::Reset { seed } };
            for codec in [Codec::MsgPack, Codec::Json] {
                let mut b = encode(codec, &msg).unwrap();
                let i = pos % b.len();
                b[i] = byte;
                let _ = decode_client(codec, &b, 1024);
            }
        }
    }

    #[test]
    fn decodes_both_codecs_and_classifies_errors() {
        let json = br#"{"type":"command","id":7,"command":{"op":"reset","seed":3}}"#;
        let m = decode_client(Codec::Json, json, 1024).unwrap();
        assert_eq!(m, ClientMessage::Command { id: RequestId::Num(7), command: Command::Reset { seed: 3 } });
        let packed = encode(Codec::MsgPack, &m).unwrap();
        assert_eq!(decode_client(Codec::MsgPack, &packed, 1024).unwrap(), m);

        let e = decode_client(Codec::Json, br#"{"type":"launch","id":"a"}"#, 1024).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::UnknownType, Some(RequestId::Str("a".into()))));
        let e = decode_client(Codec::Json, br#"{"type":"subscribe","id":1,"streams":["nope"]}"#, 1024).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::BadMessage, Some(RequestId::Num(1))));
        let e = decode_client(Codec::MsgPack, &[0xc1, 0xff, 0x00], 1024).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadMessage);
        let e = decode_client(Codec::Json, &[b' '; 2000], 1024).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        let sub = br#"{"type":"subscribe","id":2,"streams":["lidar","imu"]}"#;
        match decode_client(Codec::Json, sub, 1024).unwrap() {
            ClientMessage::Subscribe { streams, .. } => assert_eq!(streams, vec![StreamName::Lidar, StreamName::Imu]),
            other => panic!("{other:?}"),
        }
    }
}
