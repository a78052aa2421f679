//! Reading back the non-finite numbers of brasa's own JSON files. JSON has no NaN or infinity, and
//! `serde_json` writes them as `null`: a model whose outputs went NaN writes `attention.json`, a
//! checkpoint's `*.val.json` or `summary.json` with `null`s. These `deserialize_with` helpers read
//! a `null` back as NaN, so the report and a resume can always read the files a run wrote. Writers
//! stay plain serde; this module never rejects or changes a finite value.

use serde::{Deserialize, Deserializer};

/// A number, `null` read as NaN.
pub fn f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// A list of numbers, each `null` read as NaN.
pub fn f32s<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
    Ok(Vec::<Option<f32>>::deserialize(deserializer)?.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

/// Rows of numbers, each `null` read as NaN.
pub fn f32_rows<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<f32>>, D::Error> {
    Ok(Vec::<Vec<Option<f32>>>::deserialize(deserializer)?
        .into_iter()
        .map(|row| row.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "super::f64")]
        one: f64,
        #[serde(deserialize_with = "super::f32s")]
        list: Vec<f32>,
        #[serde(deserialize_with = "super::f32_rows")]
        rows: Vec<Vec<f32>>,
    }

    #[test]
    fn non_finite_values_written_as_null_read_back_as_nan() {
        let written = serde_json::to_string(&Probe { one: f64::NAN, list: vec![f32::NAN, 0.5, f32::INFINITY], rows: vec![vec![f32::NAN, 1.0]] }).unwrap();
        assert!(written.contains("null"), "{written}");
        let read: Probe = serde_json::from_str(&written).unwrap();
        assert!(read.one.is_nan());
        assert!(read.list[0].is_nan() && read.list[1] == 0.5 && read.list[2].is_nan());
        assert!(read.rows[0][0].is_nan() && read.rows[0][1] == 1.0);
    }
}
