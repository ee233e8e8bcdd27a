//! `waypoint-protocol`: the wire types of Waypoint's WebSocket protocol, version 1.
//!
//! Two subprotocols carry the same messages: [`SUBPROTOCOL_MSGPACK`] (binary frames,
//! MessagePack maps with named fields, bulk numbers as `bin` of little-endian values) and
//! [`SUBPROTOCOL_JSON`] (text frames, bulk numbers as arrays). [`messages`] defines the
//! messages, [`bulk`] the bulk-number encoding, [`codec`] decoding with error replies, and
//! [`convert`] builds stream messages from simulator frames. `docs/PROTOCOL.md` is the
//! specification with examples.

pub mod bulk;
pub mod codec;
pub mod convert;
pub mod messages;

pub use bulk::{Bulk, BulkFormat, Compression};
pub use codec::{decode_client, encode, Codec, DecodeError};
pub use messages::*;

/// Version of this protocol, sent in `hello`.
pub const PROTOCOL_VERSION: &str = "1.0";
/// MessagePack subprotocol name.
pub const SUBPROTOCOL_MSGPACK: &str = "waypoint.v1.msgpack";
/// JSON subprotocol name.
pub const SUBPROTOCOL_JSON: &str = "waypoint.v1.json";

/// Errors building or reading protocol values.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("bulk data: {0}")]
    Bulk(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}
