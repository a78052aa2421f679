//! brasa's statistics against statsmodels (McNemar) and scipy (bootstrap); fixture generator:
//! tests/fixtures/stats/generate.py.

use brasa::stats::{self, Metric};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats/stats.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn labels(value: &Value) -> Vec<usize> {
    value.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()
}

#[test]
fn mcnemar_exact_matches_statsmodels() {
    for case in fixture()["mcnemar"].as_array().unwrap() {
        let (b, c) = (case["b"].as_u64().unwrap() as usize, case["c"].as_u64().unwrap() as usize);
        let expected = case["pvalue"].as_f64().unwrap();
        let ours = stats::mcnemar_exact(b, c);
        assert!((ours - expected).abs() <= 1e-12 + 1e-9 * expected, "b={b} c={c}: {ours} vs statsmodels {expected}");
    }
}

#[test]
fn bootstrap_intervals_agree_with_scipy_within_monte_carlo_error() {
    let f = fixture();
    let (truth, a, b) = (labels(&f["truth"]), labels(&f["pred_a"]), labels(&f["pred_b"]));
    let k = f["num_classes"].as_u64().unwrap() as usize;
    let check = |name: &str, value: f64, low: f64, high: f64| {
        let reference = &f["bootstrap"][name];
        let interval = reference["interval"].as_array().unwrap();
        let (r_low, r_high) = (interval[0].as_f64().unwrap(), interval[1].as_f64().unwrap());
        assert!((value - reference["value"].as_f64().unwrap()).abs() < 1e-12, "{name} point estimate");
        // scipy used 10000 resamples, brasa 2000: endpoints agree to Monte Carlo error
        assert!((low - r_low).abs() < 0.012 && (high - r_high).abs() < 0.012, "{name}: [{low}, {high}] vs scipy [{r_low}, {r_high}]");
        println!("{name}: brasa [{low:.4}, {high:.4}] scipy [{r_low:.4}, {r_high:.4}]");
    };
    for (name, metric) in [("accuracy", Metric::Accuracy), ("macro_f1", Metric::MacroF1), ("weighted_f1", Metric::WeightedF1)] {
        let i = stats::metric_interval(&truth, &a, k, metric, 1);
        check(name, i.value, i.low, i.high);
    }
    for (name, metric) in [("accuracy_difference", Metric::Accuracy), ("macro_f1_difference", Metric::MacroF1)] {
        let i = stats::paired_difference(&truth, &a, &b, k, metric, 1);
        check(name, i.value, i.low, i.high);
    }
}
