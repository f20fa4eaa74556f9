//! The proxy-wasm ABI's vocabulary, as plain data: status codes, the
//! enums plugins pass as integers, and the header-pairs encoding. No wasm
//! engine here: the host (`host`) uses these.

/// `WasmResult`: what a host call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    Unimplemented = 12,
}

/// Which header map a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

impl MapType {
    pub(crate) fn from_abi(value: i32) -> Option<MapType> {
        Some(match value {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            _ => return None,
        })
    }
}

/// Which buffer a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferType {
    RequestBody,
    ResponseBody,
    VmConfiguration,
    PluginConfiguration,
}

impl BufferType {
    pub(crate) fn from_abi(value: i32) -> Option<BufferType> {
        Some(match value {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            _ => return None,
        })
    }
}

/// What `proxy_on_*_body` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataStatus {
    Continue,
    /// `StopIterationAndBuffer`, `StopIterationAndWatermark`,
    /// `StopIterationNoBuffer`: the host keeps the body so far and hands
    /// it whole to the next call.
    Buffer,
}

impl DataStatus {
    pub(crate) fn from_abi(value: i32) -> DataStatus {
        match value {
            1..=3 => DataStatus::Buffer,
            _ => DataStatus::Continue,
        }
    }
}

/// Header pairs as the ABI lays them out: the count (u32 LE), then each
/// pair's name and value lengths (u32 LE each), then each name and value,
/// each followed by a NUL.
pub(crate) fn encode_pairs(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let data: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + 8 * pairs.len() + data);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (name, value) in pairs {
        out.extend_from_slice(&len(name.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

/// The pairs of [`encode_pairs`]'s layout; `None` if `bytes` is not one
/// (truncated, a length past the end, a name that is not UTF-8). Names
/// come back lower-cased, as HTTP/2 writes them.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    // Each pair needs at least its two lengths and two NULs.
    if count > bytes.len() / 10 + 1 {
        return None;
    }
    let mut data = 4 + 8 * count;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = word(4 + 8 * i)?;
        let value_len = word(8 + 8 * i)?;
        let name = bytes.get(data..data.checked_add(name_len)?)?;
        data += name_len + 1;
        let value = bytes.get(data..data.checked_add(value_len)?)?;
        data += value_len + 1;
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        pairs.push((name, value.to_vec()));
    }
    (data <= bytes.len()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            ("x-a".to_string(), b"1".to_vec()),
            (":path".to_string(), b"/p?q".to_vec()),
            ("x-empty".to_string(), Vec::new()),
        ];
        let bytes = encode_pairs(&pairs);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(decode_pairs(&bytes), Some(pairs));
        assert_eq!(decode_pairs(&[]), Some(Vec::new()));
        assert_eq!(decode_pairs(&encode_pairs(&[])), Some(Vec::new()));
    }

    #[test]
    fn bad_pairs_are_refused() {
        let bytes = encode_pairs(&[("X-A".to_string(), b"1".to_vec())]);
        assert_eq!(
            decode_pairs(&bytes),
            Some(vec![("x-a".to_string(), b"1".to_vec())]),
            "names are lower-cased"
        );
        for cut in 1..bytes.len() - 1 {
            assert_eq!(decode_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), None);
        let mut long = bytes;
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&long), None);
    }

    #[test]
    fn body_answers() {
        assert_eq!(DataStatus::from_abi(0), DataStatus::Continue);
        assert_eq!(DataStatus::from_abi(1), DataStatus::Buffer);
        assert_eq!(DataStatus::from_abi(3), DataStatus::Buffer);
        assert_eq!(MapType::from_abi(4), None);
        assert_eq!(
            BufferType::from_abi(7),
            Some(BufferType::PluginConfiguration)
        );
    }
}
