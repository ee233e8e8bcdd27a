//! Bulk numbers on the wire: MessagePack `bin` of little-endian values, JSON arrays.

use std::io::{Read, Write};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProtocolError;

/// How bulk values are laid out in a `bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkFormat {
    /// Little-endian IEEE f32.
    #[default]
    F32,
    /// Little-endian i16; see each field's documentation for the scale.
    I16,
}

/// Optional compression of a `bin` (MessagePack only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    /// zlib-wrapped deflate (RFC 1950), as the browser's `DecompressionStream("deflate")` reads.
    Deflate,
}

/// A block of numbers. Serialised as a `bin` by binary formats and as an array of numbers by
/// human-readable ones (JSON). Deserialised as whatever arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Bulk {
    F32(Vec<f32>),
    I16(Vec<i16>),
    /// Already-encoded (possibly compressed) bytes; binary formats only.
    Bytes(Vec<u8>),
    /// Numbers as they arrived in a human-readable format.
    Numbers(Vec<f64>),
}

impl Bulk {
    /// Encodes values for a binary wire with the given layout and compression.
    pub fn encode_f32(values: &[f32], compression: Compression) -> Bulk {
        let mut raw = Vec::with_capacity(values.len() * 4);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        Bulk::Bytes(compress(raw, compression))
    }

    pub fn encode_i16(values: &[i16], compression: Compression) -> Bulk {
        let mut raw = Vec::with_capacity(values.len() * 2);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        Bulk::Bytes(compress(raw, compression))
    }

    /// Decodes back to numbers, whatever the representation.
    pub fn to_f64(&self, format: BulkFormat, compression: Compression) -> Result<Vec<f64>, ProtocolError> {
        Ok(match self {
            Bulk::F32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Bulk::I16(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Bulk::Numbers(v) => v.clone(),
            Bulk::Bytes(b) => {
                let raw = decompress(b, compression)?;
                match format {
                    BulkFormat::F32 => {
                        if !raw.len().is_multiple_of(4) {
                            return Err(ProtocolError::Bulk("f32 bin length is not a multiple of 4".into()));
                        }
                        raw.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
                    }
                    BulkFormat::I16 => {
                        if !raw.len().is_multiple_of(2) {
                            return Err(ProtocolError::Bulk("i16 bin length is not a multiple of 2".into()));
                        }
                        raw.chunks_exact(2).map(|c| f64::from(i16::from_le_bytes([c[0], c[1]]))).collect()
                    }
                }
            }
        })
    }
}

fn compress(raw: Vec<u8>, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => raw,
        Compression::Deflate => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::with_capacity(raw.len() / 2), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(&raw);
            enc.finish().unwrap_or_default()
        }
    }
}

/// Most bytes a compressed bin may expand to (guards against decompression bombs).
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

fn decompress(b: &[u8], compression: Compression) -> Result<Vec<u8>, ProtocolError> {
    match compression {
        Compression::None => Ok(b.to_vec()),
        Compression::Deflate => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(b)
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| ProtocolError::Bulk(format!("bad deflate data: {e}")))?;
            if out.len() as u64 > MAX_DECOMPRESSED_BYTES {
                return Err(ProtocolError::Bulk("decompressed bin too large".into()));
            }
            Ok(out)
        }
    }
}

impl Serialize for Bulk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                // JSON has no NaN: a value that is not a number is `null` (as OIP JSON sends
                // it), never a number a client would take at its word.
                Bulk::F32(v) => s.collect_seq(v.iter().map(|x| x.is_finite().then_some(f64::from(*x)))),
                Bulk::I16(v) => s.collect_seq(v.iter()),
                Bulk::Numbers(v) => s.collect_seq(v.iter()),
                Bulk::Bytes(_) => Err(serde::ser::Error::custom("raw bytes cannot be sent in a human-readable format")),
            }
        } else {
            match self {
                Bulk::F32(v) => match Bulk::encode_f32(v, Compression::None) {
                    Bulk::Bytes(b) => s.serialize_bytes(&b),
                    _ => unreachable!("encode_f32 returns bytes"),
                },
                Bulk::I16(v) => match Bulk::encode_i16(v, Compression::None) {
                    Bulk::Bytes(b) => s.serialize_bytes(&b),
                    _ => unreachable!("encode_i16 returns bytes"),
                },
                Bulk::Bytes(b) => s.serialize_bytes(b),
                Bulk::Numbers(v) => {
                    let f: Vec<f32> = v.iter().map(|x| *x as f32).collect();
                    Bulk::F32(f).serialize(s)
                }
            }
        }
    }
}

struct BulkVisitor;

impl<'de> Visitor<'de> for BulkVisitor {
    type Value = Bulk;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a bin or an array of numbers")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bulk, E> {
        Ok(Bulk::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bulk, E> {
        Ok(Bulk::Bytes(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bulk, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(v) = seq.next_element::<Option<f64>>()? {
            out.push(v.unwrap_or(f64::NAN));
        }
        Ok(Bulk::Numbers(out))
    }
}

impl<'de> Deserialize<'de> for Bulk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bulk, D::Error> {
        d.deserialize_any(BulkVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_codecs_and_compresses() {
        let values: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.5).collect();
        let json = serde_json::to_string(&Bulk::F32(values.clone())).unwrap();
        let back: Bulk = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_f64(BulkFormat::F32, Compression::None).unwrap()[3], 1.5);
        let packed = rmp_serde::to_vec(&Bulk::encode_f32(&values, Compression::Deflate)).unwrap();
        assert!(packed.len() < 4000 / 2, "compressed to {}", packed.len());
        let back: Bulk = rmp_serde::from_slice(&packed).unwrap();
        let decoded = back.to_f64(BulkFormat::F32, Compression::Deflate).unwrap();
        assert_eq!(decoded.len(), 1000);
        assert!(decoded.iter().zip(&values).all(|(a, b)| (*a as f32) == *b));
        assert!(Bulk::Bytes(vec![1, 2, 3]).to_f64(BulkFormat::F32, Compression::None).is_err());
        // Not-a-number is null in JSON, and null reads back as NaN, not as 0.
        let json = serde_json::to_string(&Bulk::F32(vec![1.5, f32::NAN, f32::INFINITY])).unwrap();
        assert_eq!(json, "[1.5,null,null]");
        let back: Bulk = serde_json::from_str(&json).unwrap();
        let v = back.to_f64(BulkFormat::F32, Compression::None).unwrap();
        assert!(v[0] == 1.5 && v[1].is_nan() && v[2].is_nan(), "{v:?}");
        assert!(Bulk::Bytes(vec![1, 2, 3]).to_f64(BulkFormat::F32, Compression::Deflate).is_err());
    }
}
