//! [`Secret`]: a value that never shows in `Debug` output or logs, and reading one from a file
//! (the `*_FILE` twin of every secret setting: a mounted secret).

use std::path::Path;

use anyhow::Context;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The secret a file holds (surrounding whitespace trimmed); `what` names it in errors.
pub fn read_secret(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    let value = text.trim().to_string();
    anyhow::ensure!(
        !value.is_empty(),
        "the {what} file {} is empty",
        path.display()
    );
    Ok(Secret(value))
}

/// A secret given directly (which wins) or as a file; `what` names it in errors.
pub fn secret_or_file(
    value: Option<&Secret>,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<Option<Secret>> {
    match (value.filter(|v| !v.0.is_empty()), file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(path)) => read_secret(path, what).map(Some),
        (None, None) => Ok(None),
    }
}
