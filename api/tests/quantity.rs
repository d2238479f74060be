//! The one table of awkward quantities: these answers are the only answers anywhere (policy,
//! webhooks, conversion, reconcilers, agents and the CLI all read sizes through
//! `cstor_api::quantity`).

use cstor_api::quantity::{Quantity, QuantityError, bytes};
use proptest::prelude::*;

#[test]
fn awkward_inputs_have_one_answer() {
    let syntax = |s: &str| Err(QuantityError::Syntax(s.to_string()));
    let rows: Vec<(&str, Result<u64, QuantityError>)> = vec![
        ("0", Ok(0)),
        ("1", Ok(1)),
        ("1.5", Ok(2)),
        ("500m", Ok(1)),
        ("1500m", Ok(2)),
        ("1e3", Ok(1000)),
        ("1E3", Ok(1000)),
        ("1E", Ok(1_000_000_000_000_000_000)),
        ("1e-2147483648", Ok(1)),
        ("1.5e-2147483648", Ok(1)),
        ("0e-2147483648", Ok(0)),
        (
            "1e999999999999999999999",
            Err(QuantityError::TooLarge("1e999999999999999999999".into())),
        ),
        ("0.1Ki", Ok(103)),
        ("1Ki", Ok(1024)),
        ("1.5Ki", Ok(1536)),
        (".5Ki", Ok(512)),
        ("1.", Ok(1)),
        ("1G", Ok(1_000_000_000)),
        ("1Gi", Ok(1 << 30)),
        ("1.5Gi", Ok(3 << 29)),
        ("1M", Ok(1_000_000)),
        ("10Mi", Ok(10 << 20)),
        ("2Ti", Ok(2 << 40)),
        ("15Ei", Ok(15 << 60)),
        ("16Ei", Err(QuantityError::TooLarge("16Ei".into()))),
        ("18446744073709551615", Ok(u64::MAX)),
        (
            "18446744073709551616",
            Err(QuantityError::TooLarge("18446744073709551616".into())),
        ),
        ("+1Gi", Ok(1 << 30)),
        ("-0", Ok(0)),
        ("-1Gi", Err(QuantityError::Negative("-1Gi".into()))),
        ("-1e-9", Err(QuantityError::Negative("-1e-9".into()))),
        ("", Err(QuantityError::Empty)),
        (" 1Gi", syntax(" 1Gi")),
        ("1Gi ", syntax("1Gi ")),
        ("1 Gi", syntax("1 Gi")),
        ("Gi", syntax("Gi")),
        ("1GB", syntax("1GB")),
        ("1gi", syntax("1gi")),
        ("1K", syntax("1K")),
        ("1e", syntax("1e")),
        ("1e+", syntax("1e+")),
        (".", syntax(".")),
        ("1..5", syntax("1..5")),
        ("--1", syntax("--1")),
        ("0x10", syntax("0x10")),
    ];
    for (text, want) in rows {
        assert_eq!(bytes(text), want, "{text:?}");
    }
}

#[test]
fn compares_by_value() {
    let q = |s: &str| Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert!(q("1Gi") > q("1G"));
    assert_eq!(q("1Gi"), q("1073741824"));
    assert_eq!(q("1.5Gi"), q("1536Mi"));
    assert_eq!(q("1e3"), q("1k"));
    assert_eq!(q("500m"), q("0.5"));
    assert!(q("500m") < q("1"));
    assert!(q("-1") < q("0"));
    assert!(q("-2Ki") < q("-1Ki"));
    assert_eq!(q("-0"), q("0"));
    assert!(q("1e-2147483648") > q("0"));
    assert!(q("1e-2147483648") < q("1n"));
    assert_eq!(q("1Gi").as_str(), "1Gi");
}

#[test]
fn formats_bytes_as_kubernetes_would() {
    for (n, text) in [
        (0u64, "0"),
        (1, "1"),
        (1024, "1Ki"),
        (1536, "1536"),
        (1 << 30, "1Gi"),
        (3 << 29, "1536Mi"),
        (1_000_000_000, "1000000000"),
        (15 << 60, "15Ei"),
    ] {
        assert_eq!(Quantity::from_bytes(n).to_string(), text, "{n}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any text at all gets an answer, never a panic or an overflow.
    #[test]
    fn never_panics(s in ".{0,40}") {
        let _ = bytes(&s);
    }

    /// Quantity-shaped text, with extreme exponents, too.
    #[test]
    fn never_panics_on_quantity_shapes(
        sign in "[-+]?", whole in "[0-9]{0,30}", fraction in "(\\.[0-9]{0,30})?",
        suffix in "(|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]{1,25})",
    ) {
        let text = format!("{sign}{whole}{fraction}{suffix}");
        if let Ok(q) = Quantity::parse(&text) {
            let _ = q.to_bytes();
            prop_assert_eq!(q.cmp(&q), std::cmp::Ordering::Equal);
        }
    }

    /// Formatting bytes reads back as the same bytes.
    #[test]
    fn bytes_round_trip(n in any::<u64>()) {
        prop_assert_eq!(bytes(&Quantity::from_bytes(n).to_string()), Ok(n));
        prop_assert_eq!(bytes(&n.to_string()), Ok(n));
    }

    /// Order agrees with bytes.
    #[test]
    fn order_agrees_with_bytes(a in any::<u64>(), b in any::<u64>()) {
        let (qa, qb) = (Quantity::from_bytes(a), Quantity::from_bytes(b));
        prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
    }
}
