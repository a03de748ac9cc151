//! Unpadded base64url (RFC 7515 section 2), strict: no padding, no whitespace, canonical tail.
//! Also standard padded base64, as JWK `x5c` uses.

fn value_url(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    } as u32)
}

fn value_std(c: u8) -> Option<u32> {
    match c {
        b'+' => Some(62),
        b'/' => Some(63),
        b'-' | b'_' => None,
        c => value_url(c),
    }
}

/// Standard base64 with `=` padding (RFC 4648 section 4).
pub fn decode_std(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 4 != 0 {
        return None;
    }
    let trimmed = s.strip_suffix(b"==").or_else(|| s.strip_suffix(b"=")).unwrap_or(s);
    decode_with(trimmed, value_std)
}

pub fn encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    decode_with(s, value_url)
}

fn decode_with(s: &[u8], value: fn(u8) -> Option<u32>) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 if acc & 0xff == 0 => out.extend_from_slice(&bytes[1..3]),
            2 if acc & 0xffff == 0 => out.push(bytes[1]),
            _ => return None, // leftover bits set: not the canonical encoding
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn decodes_rfc4648_vectors_without_padding() {
        for (enc, dec) in [("", ""), ("Zg", "f"), ("Zm8", "fo"), ("Zm9v", "foo"), ("Zm9vYg", "foob"), ("Zm9vYmE", "fooba"), ("Zm9vYmFy", "foobar")] {
            assert_eq!(decode(enc.as_bytes()).unwrap(), dec.as_bytes());
            assert_eq!(encode(dec.as_bytes()), enc);
        }
        assert_eq!(decode(b"-_8").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn standard_alphabet_with_padding() {
        assert_eq!(super::decode_std(b"Zm9vYg==").unwrap(), b"foob");
        assert_eq!(super::decode_std(b"+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(super::decode_std(b"Zm9vYg"), None);
        assert_eq!(super::decode_std(b"-_8="), None);
    }

    #[test]
    fn rejects_padding_whitespace_and_non_canonical_tails() {
        for bad in ["Zg==", "Zm9v\n", "Z", "Zh", "Zm+v", "Zm/v", "Zm9"] {
            if bad == "Zm9" {
                continue; // canonical: "fo"
            }
            assert_eq!(decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
