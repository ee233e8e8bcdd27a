//! Tensors as the serving layer sees them: a datatype, a shape and flat row-major data.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Element types, named as in the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "UINT8")]
    U8,
    #[serde(rename = "INT32")]
    I32,
    #[serde(rename = "INT64")]
    I64,
    #[serde(rename = "FP32")]
    F32,
    #[serde(rename = "FP64")]
    F64,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
        }
    }

    pub fn parse(s: &str) -> Option<DataType> {
        Some(match s {
            "BOOL" => DataType::Bool,
            "UINT8" => DataType::U8,
            "INT32" => DataType::I32,
            "INT64" => DataType::I64,
            "FP32" => DataType::F32,
            "FP64" => DataType::F64,
            _ => return None,
        })
    }

    /// Bytes per element in the binary tensor encoding.
    pub fn size_bytes(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 => 1,
            DataType::I32 | DataType::F32 => 4,
            DataType::I64 | DataType::F64 => 8,
        }
    }
}

/// Flat tensor data.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl TensorData {
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Little-endian bytes (the binary tensor extension's layout).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Parses little-endian bytes; the length must be a whole number of elements.
    pub fn from_le_bytes(dt: DataType, b: &[u8]) -> Result<TensorData, ModelError> {
        if !b.len().is_multiple_of(dt.size_bytes()) {
            return Err(ModelError::BadInput(format!(
                "{} bytes is not a whole number of {} elements",
                b.len(),
                dt.as_str()
            )));
        }
        Ok(match dt {
            DataType::Bool => TensorData::Bool(b.iter().map(|x| *x != 0).collect()),
            DataType::U8 => TensorData::U8(b.to_vec()),
            DataType::I32 => {
                TensorData::I32(b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            DataType::I64 => TensorData::I64(
                b.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            DataType::F32 => {
                TensorData::F32(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            DataType::F64 => TensorData::F64(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
        })
    }

    fn empty_like(&self, cap: usize) -> TensorData {
        match self {
            TensorData::Bool(_) => TensorData::Bool(Vec::with_capacity(cap)),
            TensorData::U8(_) => TensorData::U8(Vec::with_capacity(cap)),
            TensorData::I32(_) => TensorData::I32(Vec::with_capacity(cap)),
            TensorData::I64(_) => TensorData::I64(Vec::with_capacity(cap)),
            TensorData::F32(_) => TensorData::F32(Vec::with_capacity(cap)),
            TensorData::F64(_) => TensorData::F64(Vec::with_capacity(cap)),
        }
    }

    fn extend_from(&mut self, other: &TensorData, range: std::ops::Range<usize>) -> Result<(), ModelError> {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(&b[range]),
            (TensorData::U8(a), TensorData::U8(b)) => a.extend_from_slice(&b[range]),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend_from_slice(&b[range]),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend_from_slice(&b[range]),
            (TensorData::F32(a), TensorData::F32(b)) => a.extend_from_slice(&b[range]),
            (TensorData::F64(a), TensorData::F64(b)) => a.extend_from_slice(&b[range]),
            _ => return Err(ModelError::BadInput("datatypes differ".into())),
        }
        Ok(())
    }
}

/// A named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// The input called `name` among a request's inputs (models take their inputs by name,
    /// never by position: an optional input left out must not shift the others).
    pub fn named<'a>(inputs: &'a [Tensor], name: &str) -> Result<&'a Tensor, ModelError> {
        inputs.iter().find(|t| t.name == name).ok_or_else(|| ModelError::BadInput(format!("missing input `{name}`")))
    }

    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Result<Tensor, ModelError> {
        let name = name.into();
        let expected = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d));
        if expected != Some(data.len()) {
            return Err(ModelError::BadInput(format!(
                "tensor {name:?}: shape {shape:?} needs {} elements, got {}",
                expected.map_or("too many".to_string(), |e| e.to_string()),
                data.len()
            )));
        }
        Ok(Tensor { name, shape, data })
    }

    /// Rows along the first (batch) dimension.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    pub fn as_f32(&self) -> Result<&[f32], ModelError> {
        match &self.data {
            TensorData::F32(v) => Ok(v),
            other => Err(ModelError::BadInput(format!(
                "tensor {:?} is {}, expected FP32",
                self.name,
                other.datatype().as_str()
            ))),
        }
    }

    /// Concatenates tensors of the same name, datatype and trailing shape along dimension 0.
    pub fn concat(parts: &[&Tensor]) -> Result<Tensor, ModelError> {
        let first = parts.first().ok_or_else(|| ModelError::BadInput("nothing to concatenate".into()))?;
        let rows: usize = parts.iter().map(|t| t.rows()).sum();
        let mut data = first.data.empty_like(parts.iter().map(|t| t.data.len()).sum());
        for p in parts {
            if p.name != first.name {
                return Err(ModelError::BadInput(format!("inputs {:?} and {:?} differ", p.name, first.name)));
            }
            if p.shape.get(1..) != first.shape.get(1..) {
                return Err(ModelError::BadInput(format!("shapes {:?} and {:?} differ", p.shape, first.shape)));
            }
            data.extend_from(&p.data, 0..p.data.len())?;
        }
        let mut shape = first.shape.clone();
        if let Some(d) = shape.first_mut() {
            *d = rows;
        }
        Tensor::new(first.name.clone(), shape, data)
    }

    /// Splits along dimension 0 into pieces of the given row counts.
    pub fn split(&self, rows: &[usize]) -> Result<Vec<Tensor>, ModelError> {
        let total: usize = rows.iter().sum();
        if total != self.rows() {
            return Err(ModelError::Internal(format!("cannot split {} rows into {total}", self.rows())));
        }
        let per_row = self.data.len() / self.rows().max(1);
        let mut out = Vec::with_capacity(rows.len());
        let mut start = 0;
        for r in rows {
            let mut data = self.data.empty_like(r * per_row);
            data.extend_from(&self.data, start * per_row..(start + r) * per_row)?;
            let mut shape = self.shape.clone();
            shape[0] = *r;
            out.push(Tensor::new(self.name.clone(), shape, data)?);
            start += r;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_and_split_round_trip() {
        let a = Tensor::new("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap();
        let b = Tensor::new("x", vec![2, 2], TensorData::F32(vec![3.0, 4.0, 5.0, 6.0])).unwrap();
        let c = Tensor::concat(&[&a, &b]).unwrap();
        assert_eq!(c.shape, vec![3, 2]);
        let parts = c.split(&[1, 2]).unwrap();
        assert_eq!(parts, vec![a, b]);
        assert!(Tensor::new("y", vec![2, 2], TensorData::F32(vec![1.0])).is_err());
        let bytes = TensorData::F32(vec![1.5, -2.0]).to_le_bytes();
        assert_eq!(TensorData::from_le_bytes(DataType::F32, &bytes).unwrap(), TensorData::F32(vec![1.5, -2.0]));
        assert!(TensorData::from_le_bytes(DataType::F32, &bytes[..7]).is_err());
    }
}
