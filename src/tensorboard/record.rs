//! TFRecord framing, the container of an event file: each record is its length (u64, little
//! endian), the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data
//! (TensorFlow's `tsl/lib/io/record_writer.cc`; TensorBoard's `record_writer.py`).

/// The CRC TFRecord stores: CRC-32C rotated right by 15 bits plus a constant, so that a CRC
/// of data holding CRCs is not trivially zero.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `data` framed as one record, appended to `out`.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The records of `bytes`, each checked against its CRCs; an error says at which byte a
/// record is cut short or corrupt.
pub fn records(mut bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut found = Vec::new();
    let mut offset = 0;
    while !bytes.is_empty() {
        let cut = || format!("the record at byte {offset} is cut short");
        let header = bytes.get(..12).ok_or_else(cut)?;
        let (length, length_crc) = header.split_at(8);
        if masked_crc32c(length) != u32::from_le_bytes(length_crc.try_into().expect("4 bytes")) {
            return Err(format!("the length of the record at byte {offset} fails its CRC"));
        }
        let length = usize::try_from(u64::from_le_bytes(length.try_into().expect("8 bytes"))).map_err(|_| cut())?;
        let end = length.checked_add(16).ok_or_else(cut)?;
        let record = bytes.get(..end).ok_or_else(cut)?;
        let (data, data_crc) = record[12..].split_at(length);
        if masked_crc32c(data) != u32::from_le_bytes(data_crc.try_into().expect("4 bytes")) {
            return Err(format!("the data of the record at byte {offset} fails its CRC"));
        }
        found.push(data);
        bytes = &bytes[end..];
        offset += end;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_give_the_published_values() {
        // CRC-32C's check value (RFC 3720, B.4) and its masked form as TensorFlow computes it
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // TensorBoard's masked_crc32c(b"123456789")
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        // 32 zero bytes: RFC 3720 B.4's first vector
        assert_eq!(crc32c::crc32c(&[0; 32]), 0x8a91_36aa);
    }

    #[test]
    fn a_record_is_framed_as_tensorboards_record_writer_frames_it() {
        // tensorboard.summary.writer.record_writer.RecordWriter(f).write(b"hello"), TensorBoard 2.21
        let expected = [
            0x05, 0, 0, 0, 0, 0, 0, 0, 0xea, 0xb2, 0x04, 0x3e, b'h', b'e', b'l', b'l', b'o', 0xbb, 0x1f, 0x1c, 0x19,
        ];
        let mut out = Vec::new();
        frame(b"hello", &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn records_read_back_and_a_damaged_or_cut_file_is_an_error_with_the_offset() {
        let mut out = Vec::new();
        frame(b"first", &mut out);
        frame(b"", &mut out);
        frame(&[7; 300], &mut out);
        assert_eq!(records(&out).unwrap(), [&b"first"[..], &b""[..], &[7; 300][..]]);
        assert_eq!(records(&out[..out.len() - 1]).unwrap_err(), "the record at byte 37 is cut short");
        let mut damaged = out.clone();
        damaged[14] ^= 1;
        assert_eq!(records(&damaged).unwrap_err(), "the data of the record at byte 0 fails its CRC");
        damaged = out.clone();
        damaged[21] ^= 1;
        assert_eq!(records(&damaged).unwrap_err(), "the length of the record at byte 21 fails its CRC");
    }
}
