//! Just enough DER to read the public key of an X.509 certificate, so that a JWK's `x5c` can be
//! checked against the key it travels with.

/// A public key as a certificate states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spki {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { crv: &'static str, point: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

/// One DER element: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = tlv(input)?;
    (t == tag).then_some((content, rest))
}

fn unsigned(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    int[start..].to_vec()
}

const SEQUENCE: u8 = 0x30;
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// The subject public key of a DER certificate.
pub fn certificate_key(der: &[u8]) -> Option<Spki> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(cert, SEQUENCE)?;
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2; // explicit version
    }
    // serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo.
    for _ in 0..5 {
        tbs = tlv(tbs)?.2;
    }
    let (spki, _) = expect(tbs, SEQUENCE)?;
    let (alg, rest) = expect(spki, SEQUENCE)?;
    let (bits, _) = expect(rest, 0x03)?;
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    let (oid, params) = expect(alg, 0x06)?;
    match oid {
        OID_RSA => {
            let (rsa, _) = expect(key, SEQUENCE)?;
            let (n, rest) = expect(rsa, 0x02)?;
            let (e, _) = expect(rest, 0x02)?;
            Some(Spki::Rsa { n: unsigned(n), e: unsigned(e) })
        }
        OID_EC => {
            let crv = match expect(params, 0x06)?.0 {
                OID_P256 => "P-256",
                OID_P384 => "P-384",
                OID_P521 => "P-521",
                _ => return None,
            };
            Some(Spki::Ec { crv, point: key.to_vec() })
        }
        OID_ED25519 => Some(Spki::Ed25519 { x: key.to_vec() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_garbage_der_is_none() {
        assert_eq!(certificate_key(b""), None);
        assert_eq!(certificate_key(&[0x30, 0x82, 0xff]), None);
        assert_eq!(certificate_key(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(certificate_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
