//! Spec errors that tell the user where to look: the file (or environment variable, or `--set`),
//! the dotted key, the offending value, and the closest valid key or value for a typo.

use std::fmt;

/// One problem in a spec, located precisely enough to fix without searching.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecIssue {
    /// Where the value was set: a spec file, an environment variable, or `--set`.
    pub origin: String,
    /// Dotted key path, e.g. `train.optimizer.lr` or `augment.chain[2].degrees`.
    pub key: String,
    /// The offending value as the user wrote it, when there is one.
    pub value: Option<String>,
    pub message: String,
    /// "did you mean ..." for typos.
    pub hint: Option<String>,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.key.is_empty() {
            write!(f, "`{}`", self.key)?;
            if let Some(value) = &self.value {
                write!(f, " = {value}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a spec (reported together, so one edit fixes them all).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub issues: Vec<SpecIssue>,
}

impl SpecError {
    pub fn single(issue: SpecIssue) -> Self {
        Self { issues: vec![issue] }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word_lower, &c.to_lowercase()), c))
        .filter(|(distance, c)| {
            let c = c.to_lowercase();
            *distance <= (c.len().max(word.len()) / 3).max(2)
                || (c.len() >= 2 && (word_lower.starts_with(&c) || c.starts_with(&word_lower)))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_rejects_strangers() {
        let keys = ["lr", "betas", "eps", "weight_decay", "name"];
        assert_eq!(closest("lrr", keys), Some("lr"));
        assert_eq!(closest("weight_decy", keys), Some("weight_decay"));
        assert_eq!(closest("lrate", keys), Some("lr"));
        assert_eq!(closest("momentum", keys), None);
    }
}
