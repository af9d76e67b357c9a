//! The reactor ABI's wire format (the Go side is api/abi): little-endian integers;
//! strings and byte slices are a u32 length then the bytes.

/// Version is the ABI revision declared through `fermion_abi_v1`.
pub const VERSION: i32 = 1;

/// Results of `fermion_handle`.
pub const HANDLE_OK: i32 = 0;
pub const HANDLE_BAD_INPUT: i32 = 1;

/// The first byte of an outbound result.
pub const RESULT_OK: u8 = 0;
pub const RESULT_ERROR: u8 = 1;

/// Why a message could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ends before its fields do.
    Short,
    /// A length field exceeds the bytes that follow it.
    TooLarge,
    /// Bytes are left after the last field.
    Trailing,
    /// An outbound result starts with an unknown tag.
    BadTag,
}

/// Reads fields in order from a message.
pub struct Decoder<'a> {
    b: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Decoder { b }
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.b.len() < 4 {
            return Err(DecodeError::Short);
        }
        let v = u32::from_le_bytes([self.b[0], self.b[1], self.b[2], self.b[3]]);
        self.b = &self.b[4..];
        Ok(v)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > self.b.len() {
            return Err(DecodeError::TooLarge);
        }
        let (p, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(p)
    }

    /// A header count, refused before anything is reserved for it when the message
    /// cannot hold that many headers (each needs at least 8 bytes of lengths).
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(8) > self.b.len() {
            return Err(DecodeError::TooLarge);
        }
        Ok(n)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.b.split_first() {
            Some((&v, rest)) => {
                self.b = rest;
                Ok(v)
            }
            None => Err(DecodeError::Short),
        }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }

    pub fn done(&self) -> Result<(), DecodeError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}
