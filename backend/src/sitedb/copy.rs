//! Rows in PostgreSQL's binary `COPY` format, written straight into a buffer: a header, then per
//! row a field count and each field as a length and its bytes (big-endian; -1 for NULL), then a
//! trailer. tokio-postgres's `BinaryCopyInWriter` encodes each value through `dyn ToSql` and an
//! await per row; the mirror writes tens of millions of fixed-width rows, so it writes them here
//! and sends the buffer in chunks through tokio-postgres's `copy_in` sink.

use bytes::{BufMut, Bytes, BytesMut};

/// µs from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `COPY ... FROM STDIN (FORMAT binary)` stream being written.
#[derive(Debug)]
pub struct CopyRows {
    buf: BytesMut,
    rows: u64,
}

impl Default for CopyRows {
    fn default() -> Self {
        CopyRows::new()
    }
}

impl CopyRows {
    pub fn new() -> CopyRows {
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        CopyRows { buf, rows: 0 }
    }

    /// Starts a row of `fields` fields.
    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.rows += 1;
        self.buf.put_i16(fields);
        self
    }

    pub fn int2(&mut self, v: i16) -> &mut Self {
        self.buf.put_i32(2);
        self.buf.put_i16(v);
        self
    }

    pub fn int4(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(4);
        self.buf.put_i32(v);
        self
    }

    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.buf.put_i32(8);
        self.buf.put_i64(v);
        self
    }

    pub fn boolean(&mut self, v: bool) -> &mut Self {
        self.buf.put_i32(1);
        self.buf.put_u8(u8::from(v));
        self
    }

    pub fn text(&mut self, v: &str) -> &mut Self {
        self.buf.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
        self.buf.put_slice(v.as_bytes());
        self
    }

    /// A `uuid` from a GUID's 128 bits (the canonical text's order).
    pub fn uuid(&mut self, v: u128) -> &mut Self {
        self.buf.put_i32(16);
        self.buf.put_u128(v);
        self
    }

    /// A `timestamp` from µs since the Unix epoch; `None` is NULL.
    pub fn timestamp(&mut self, micros: Option<i64>) -> &mut Self {
        match micros {
            Some(us) => self.int8(us.saturating_sub(PG_EPOCH_MICROS)),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.buf.put_i32(-1);
        self
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// What is written so far, to send (the stream goes on).
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The rest of the stream, with its trailer.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_pg_documents() {
        let mut c = CopyRows::new();
        c.row(3).int4(7).null().timestamp(Some(PG_EPOCH_MICROS + 1));
        let b = c.finish();
        assert_eq!(&b[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&b[11..19], &[0; 8]);
        assert_eq!(
            &b[19..],
            &[
                0, 3, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1,
                0xff, 0xff
            ]
        );
    }
}
