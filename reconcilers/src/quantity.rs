//! Kubernetes quantities as whole bytes: the exact form the operator writes into claims, and a
//! parser for the requests claim binding compares against BlockDevice capacities.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `bytes` as an exact quantity (plain decimal digits: no lossy unit rounding).
pub fn bytes_quantity(bytes: u64) -> Quantity {
    Quantity(bytes.to_string())
}

/// Parses a quantity (`1Gi`, `10G`, `1.5Ki`, `1e3`, `512`) into bytes, rounding a fraction up.
/// `None` for anything that is not a non-negative quantity.
pub fn parse_bytes(q: &str) -> Option<u128> {
    let s = q.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let num = num.strip_prefix('+').unwrap_or(num);
    if num.is_empty() || num.matches('.').count() > 1 {
        return None;
    }
    // (multiplier numerator, power of ten divisor) for the suffix.
    let (mul, exp10): (u128, i32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        other => {
            let e = other.strip_prefix(['e', 'E'])?;
            (1, e.parse::<i32>().ok()?)
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mantissa: u128 = digits.parse().ok()?;
    let exp = exp10 - i32::try_from(frac.len()).ok()?;
    let value = mantissa.checked_mul(mul)?;
    if exp >= 0 {
        value.checked_mul(10u128.checked_pow(u32::try_from(exp).ok()?)?)
    } else {
        let div = 10u128.checked_pow(u32::try_from(-exp).ok()?)?;
        Some(value.div_ceil(div))
    }
}
