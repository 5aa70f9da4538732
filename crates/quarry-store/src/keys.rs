//! Key encodings. Numbers are big-endian so that sled's byte order is their
//! numeric order; per-collection keys start with the collection's numeric id
//! so that a collection's data is one contiguous range.

/// `collection id ++ suffix`.
pub(crate) fn scoped(collection_id: u64, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + suffix.len());
    key.extend_from_slice(&collection_id.to_be_bytes());
    key.extend_from_slice(suffix);
    key
}

/// `collection id ++ chunk id`.
pub(crate) fn chunk(collection_id: u64, chunk_id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&collection_id.to_be_bytes());
    key[8..].copy_from_slice(&chunk_id.to_be_bytes());
    key
}

/// The key range holding everything of one collection.
pub(crate) fn collection_prefix(collection_id: u64) -> [u8; 8] {
    collection_id.to_be_bytes()
}

pub(crate) fn decode_u64(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

pub(crate) fn decode_u32(raw: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(raw.try_into().ok()?))
}

/// The suffix after the 8-byte collection id.
pub(crate) fn suffix(key: &[u8]) -> &[u8] {
    &key[8.min(key.len())..]
}

/// Vectors are stored as little-endian f32s.
pub(crate) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn decode_vector(raw: &[u8]) -> Option<Vec<f32>> {
    if !raw.len().is_multiple_of(4) {
        return None;
    }
    Some(
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}
