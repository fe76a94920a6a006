//! A bounded bit reader over an RBSP (emulation prevention removed), with
//! Exp-Golomb codes (H.264/H.265 §9.2), and the emulation prevention that
//! turns an RBSP back into NAL unit bytes (§7.4.1 / §7.4.2). Reads past
//! the end are errors.

use std::borrow::Cow;

/// Removes emulation prevention bytes (`00 00 03` -> `00 00`).
pub fn rbsp(nal_payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal_payload.len());
    let mut zeros = 0;
    for &b in nal_payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// [`rbsp`], borrowing when there is no emulation prevention byte to
/// remove (the common case: no copy).
pub fn rbsp_cow(nal_payload: &[u8]) -> Cow<'_, [u8]> {
    if nal_payload.windows(3).any(|w| w == [0, 0, 3]) {
        Cow::Owned(rbsp(nal_payload))
    } else {
        Cow::Borrowed(nal_payload)
    }
}

/// Appends `rbsp` with emulation-prevention bytes inserted (0x000003 before
/// any 0x00-0x03 that follows two zero bytes), the inverse of [`rbsp`].
pub fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Reading past the end of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfData;

pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Result<u32, OutOfData> {
        let byte = *self.data.get(self.pos / 8).ok_or(OutOfData)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(b))
    }

    /// Up to 32 bits, most significant first.
    pub fn bits(&mut self, n: u32) -> Result<u32, OutOfData> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// Bits read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn skip(&mut self, n: usize) -> Result<(), OutOfData> {
        if self.pos + n > self.data.len() * 8 {
            return Err(OutOfData);
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb, ue(v); longer than 31 leading zeros is invalid.
    pub fn ue(&mut self) -> Result<u32, OutOfData> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(OutOfData);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb, se(v) (§9.2.2: 1, 2, 3, 4 -> 1, -1, 2, -2).
    pub fn se(&mut self) -> Result<i64, OutOfData> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_and_bounds() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let d = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&d);
        assert_eq!(
            (r.ue(), r.ue(), r.ue(), r.ue()),
            (Ok(0), Ok(1), Ok(2), Ok(3))
        );
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert_eq!(r.ue(), Err(OutOfData));
        let mut r = BitReader::new(&[]);
        assert_eq!(r.bit(), Err(OutOfData));
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
        // 010 | 011 | 00100 | 00101 -> 1, -1, 2, -2
        let mut r = BitReader::new(&[0b0100_1100, 0b1000_0101]);
        assert_eq!(
            (r.se(), r.se(), r.se(), r.se()),
            (Ok(1), Ok(-1), Ok(2), Ok(-2))
        );
        assert_eq!(r.position(), 16);
    }

    #[test]
    fn escape_is_the_inverse_of_rbsp() {
        for raw in [
            &[0u8, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0][..],
            &[0, 0],
            &[1, 2, 3],
            &[],
        ] {
            let mut nal = Vec::new();
            escape_into(raw, &mut nal);
            assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] < 3));
            assert_eq!(rbsp(&nal), raw);
            assert_eq!(&*rbsp_cow(&nal), raw);
        }
        assert!(matches!(rbsp_cow(&[0, 0, 4, 0]), Cow::Borrowed(_)));
    }
}
