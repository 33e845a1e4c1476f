//! `--shard K/N`: one of N deterministic slices of the files given, so N CI
//! machines given the same files run each of them exactly once.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The K-th (1-based) of N slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub total: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("expected K/N with 1 <= K <= N, e.g. 2/4, not {s:?}");
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let index: usize = k.trim().parse().map_err(|_| usage())?;
        let total: usize = n.trim().parse().map_err(|_| usage())?;
        if index == 0 || total == 0 || index > total {
            return Err(usage());
        }
        Ok(Shard { index, total })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// This shard's files. The files are sorted and duplicates dropped
    /// first, so the order a shell's glob or a CI variable gives them in
    /// does not matter; then file i (0-based) goes to shard i mod N + 1.
    /// Dealing them out round-robin, rather than in N runs of neighbours,
    /// spreads files named alike (one layout's, often alike in cost) over
    /// every shard.
    pub fn select(&self, files: &[PathBuf]) -> Vec<PathBuf> {
        let mut all = files.to_vec();
        all.sort();
        all.dedup();
        all.into_iter().enumerate().filter(|(i, _)| i % self.total == self.index - 1).map(|(_, f)| f).collect()
    }
}

/// The files to work on: all of them, or `shard`'s, said on stderr so a CI
/// log shows which files this machine took.
pub fn files(files: Vec<PathBuf>, shard: Option<Shard>) -> Vec<PathBuf> {
    let Some(shard) = shard else { return files };
    let mine = shard.select(&files);
    eprintln!("bridgelab: shard {shard}: {} of {} files", mine.len(), files.len());
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, total: 4 }));
        assert_eq!("1/1".parse::<Shard>(), Ok(Shard { index: 1, total: 1 }));
        for bad in ["0/3", "4/3", "3", "a/3", "1/0", "/", "1/2/3", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_cover_every_file_once_whatever_the_order() {
        let files: Vec<PathBuf> = ["e", "a", "d", "b", "c", "a"].iter().map(PathBuf::from).collect();
        let mut reversed = files.clone();
        reversed.reverse();
        let mut seen = Vec::new();
        for k in 1..=3 {
            let s = Shard { index: k, total: 3 };
            assert_eq!(s.select(&files), s.select(&reversed));
            seen.extend(s.select(&files));
        }
        seen.sort();
        let expected: Vec<PathBuf> = ["a", "b", "c", "d", "e"].iter().map(PathBuf::from).collect();
        assert_eq!(seen, expected);
        // More shards than files: the last ones are empty, not an error.
        assert!(Shard { index: 6, total: 6 }.select(&files).is_empty());
    }
}
