//! Exact comparison of Kubernetes quantities (`1Gi`, `1073741824`, `1.5G`, `500m`, `1e3`) in
//! milli-units, enough for the rules that compare sizes.

/// The value of a quantity in thousandths, or `None` if it is not a quantity we can read.
pub fn milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let (number, suffix) = split(q);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .chars()
        .chain(frac_part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mantissa: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let scale = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
    // value * 1000 = mantissa * num * 1000 / (scale * den)
    let (num, den): (i128, i128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().ok()?;
            if exp >= 0 {
                (10i128.checked_pow(exp.unsigned_abs())?, 1)
            } else {
                (1, 10i128.checked_pow(exp.unsigned_abs())?)
            }
        }
        _ => return None,
    };
    let value = mantissa.checked_mul(num)?.checked_mul(1000)? / scale.checked_mul(den)?;
    Some(if negative { -value } else { value })
}

fn split(q: &str) -> (&str, &str) {
    let end = q
        .char_indices()
        .find(|(i, c)| c.is_ascii_alphabetic() && !(*i == 0 && (*c == '+' || *c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(q.len());
    q.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::milli;

    #[test]
    fn reads_the_forms_kubernetes_writes() {
        assert_eq!(milli("1Gi"), milli("1073741824"));
        assert_eq!(milli("1G"), Some(1_000_000_000_000));
        assert_eq!(milli("1.5Gi"), milli("1536Mi"));
        assert_eq!(milli("500m"), Some(500));
        assert_eq!(milli("1e3"), milli("1k"));
        assert_eq!(milli("-2Ki"), Some(-2_048_000));
        assert_eq!(milli("5Gb"), None);
        assert_eq!(milli(""), None);
        assert_eq!(milli("abc"), None);
        assert!(milli("2Gi") > milli("1Gi"));
    }
}
