//! Kubernetes resource quantities (`1Gi`, `500M`, `1.5`, `500m`, `1e3`): the one parser of the
//! project. Every suffix means what it means to Kubernetes: `Ki Mi Gi Ti Pi Ei` are powers of
//! 1024, `n u m k M G T P E` powers of 1000 (so `1G` is 10^9 and `1Gi` 2^30), and `e<n>` / `E<n>`
//! a power of ten. Values are kept exactly (a decimal digit string and a power of ten), so
//! comparing never rounds and no input overflows, however large its exponent.
//!
//! **The rounding rule**, the only one anywhere: a quantity read as a number of bytes is rounded
//! up to the next whole byte, as Kubernetes' `Quantity.Value()` does (`0.1Ki` = 103, `500m` = 1,
//! `1.5` = 2). A negative quantity is not a number of bytes; neither is one above `u64::MAX`.
//! Kubernetes does not trim: an empty string or any space is an error.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a text is not a quantity, or not a number of bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error(
        "{0:?} is not a quantity: expected a number and one of the suffixes Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>"
    )]
    Syntax(String),
    #[error("{0:?} is negative, not a number of bytes")]
    Negative(String),
    #[error("{0:?} is more than {max} bytes", max = u64::MAX)]
    TooLarge(String),
}

/// An exact Kubernetes quantity: `(-1)^negative × digits × 10^exponent`.
#[derive(Clone, Debug)]
pub struct Quantity {
    negative: bool,
    /// Decimal digits, most significant first, without leading or trailing zeros; empty is 0.
    digits: Vec<u8>,
    /// Power of ten applied to `digits`. Saturated far beyond any meaningful value, so that
    /// arithmetic on it (in i128) never overflows.
    exponent: i64,
    /// The text it was parsed from, or its canonical form.
    text: String,
}

/// Exponents beyond this are saturated: 10^(10^15) bytes or 10^-(10^15) are as good as
/// infinite or zero, and the bound keeps every sum of exponents far from i64's edges.
const EXPONENT_LIMIT: i64 = 1_000_000_000_000_000;

const BINARY: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: [(&str, i64); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

impl Quantity {
    /// Parses Kubernetes' grammar: an optional sign, digits with an optional fraction (`1`,
    /// `1.5`, `1.`, `.5`), then nothing, a binary or decimal suffix, or an exponent.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        let syntax = || QuantityError::Syntax(text.to_string());
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(syntax());
        }
        let mut exponent = -(fraction.len() as i128);
        let mut factor_1024 = 0u32;
        // Suffixes first: `Ei` and `E` are units; `E3` and `e-3` are exponents.
        if let Some((_, k)) = BINARY.iter().find(|(name, _)| *name == suffix) {
            factor_1024 = *k;
        } else if let Some((_, e)) = DECIMAL.iter().find(|(name, _)| *name == suffix) {
            exponent += i128::from(*e);
        } else if let Some(e) = suffix.strip_prefix(['e', 'E']) {
            exponent += parse_exponent(e).ok_or_else(syntax)?;
        } else if !suffix.is_empty() {
            return Err(syntax());
        }
        let mut digits: Vec<u8> = whole
            .bytes()
            .chain(fraction.bytes())
            .map(|b| b - b'0')
            .collect();
        for _ in 0..factor_1024 {
            digits = times_small(&digits, 1024);
        }
        let mut q = Quantity {
            negative,
            digits,
            exponent: 0,
            text: text.to_string(),
        };
        q.normalize(exponent);
        Ok(q)
    }

    /// Exactly `bytes`, written as Kubernetes would: the largest binary suffix that divides it
    /// (`1Gi`, `512Mi`), else plain digits (`1536`, never `1.5Ki`).
    pub fn from_bytes(bytes: u64) -> Quantity {
        let (mut value, mut suffix) = (bytes, "");
        for (name, _) in BINARY {
            if value != 0 && value % 1024 == 0 {
                value /= 1024;
                suffix = name;
            } else {
                break;
            }
        }
        let text = format!("{value}{suffix}");
        let mut q = Quantity {
            negative: false,
            digits: bytes.to_string().bytes().map(|b| b - b'0').collect(),
            exponent: 0,
            text,
        };
        q.normalize(0);
        q
    }

    /// The number of bytes: rounded up to a whole byte (the module's one rounding rule); an
    /// error if negative or above `u64::MAX`.
    pub fn to_bytes(&self) -> Result<u64, QuantityError> {
        if self.digits.is_empty() {
            return Ok(0);
        }
        if self.negative {
            return Err(QuantityError::Negative(self.text.clone()));
        }
        let too_large = || QuantityError::TooLarge(self.text.clone());
        let len = self.digits.len() as i128;
        let whole_len = len + i128::from(self.exponent);
        if whole_len > 20 {
            return Err(too_large());
        }
        if whole_len <= 0 {
            // 0 < value < 1: one byte.
            return Ok(1);
        }
        let whole_len = whole_len as usize;
        let mut whole: u128 = 0;
        for i in 0..whole_len {
            let d = self.digits.get(i).copied().unwrap_or(0);
            whole = whole * 10 + u128::from(d);
        }
        // Digits are normalized without trailing zeros, so any digit past the point is non-zero.
        if self.digits.len() > whole_len {
            whole += 1;
        }
        u64::try_from(whole).map_err(|_| too_large())
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The text this quantity was parsed from (or, from bytes, its canonical form).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Strips leading and trailing zeros, moving the trailing ones into the exponent.
    fn normalize(&mut self, exponent: i128) {
        let start = self
            .digits
            .iter()
            .position(|d| *d != 0)
            .unwrap_or(self.digits.len());
        self.digits.drain(..start);
        let trailing = self.digits.iter().rev().take_while(|d| **d == 0).count();
        self.digits.truncate(self.digits.len() - trailing);
        let exponent = exponent + trailing as i128;
        self.exponent = if self.digits.is_empty() {
            self.negative = false;
            0
        } else {
            exponent.clamp(-i128::from(EXPONENT_LIMIT), i128::from(EXPONENT_LIMIT)) as i64
        };
    }

    fn cmp_magnitude(&self, other: &Quantity) -> Ordering {
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        // The position of the most significant digit decides, then the digits themselves.
        let top = |q: &Quantity| q.digits.len() as i128 + i128::from(q.exponent);
        top(self)
            .cmp(&top(other))
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

/// A signed exponent, saturated at [`EXPONENT_LIMIT`]; `None` unless it is digits with an
/// optional sign.
fn parse_exponent(s: &str) -> Option<i128> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i128 = 0;
    for b in digits.bytes() {
        value = (value * 10 + i128::from(b - b'0')).min(i128::from(EXPONENT_LIMIT));
    }
    Some(if negative { -value } else { value })
}

/// `digits × k` for a small `k`, in decimal.
fn times_small(digits: &[u8], k: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(digits.len() + 4);
    let mut carry = 0u32;
    for d in digits.iter().rev() {
        let v = u32::from(*d) * k + carry;
        out.push((v % 10) as u8);
        carry = v / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    out
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// By value: `1Gi` > `1G`, `1Gi` == `1073741824`, `-1` < `0`.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;
    fn try_from(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        Quantity::parse(&q.0)
    }
}

impl From<&Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: &Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.text.clone())
    }
}

/// The bytes of a quantity's text (rounded up, [`Quantity::to_bytes`]).
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    Quantity::parse(text)?.to_bytes()
}

/// `bytes` as plain digits, the exact form the operators write where a value is compared with
/// another (a claim's request against a BlockDevice's capacity).
pub fn plain_bytes(bytes: u64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(bytes.to_string())
}
