use std::fmt;

/// One problem in the configuration, naming the file, the entry (webhook id or connection
/// name) and the key, e.g. `webhooks.json: github.module-config.topic: missing field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as given to [`super::ConfigSource::new`]).
    pub file: String,
    /// The webhook id or connection name, when the error is inside one.
    pub entry: Option<String>,
    /// The dotted path of the key inside the entry; empty for the entry as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        file: &str,
        entry: Option<&str>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            entry: entry.map(str::to_owned),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        match (&self.entry, self.key.is_empty()) {
            (Some(entry), false) => write!(f, "{entry}.{}: ", self.key)?,
            (Some(entry), true) => write!(f, "{entry}: ")?,
            (None, false) => write!(f, "{}: ", self.key)?,
            (None, true) => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; start-up lists them all and stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, err) in self.0.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "  {err}")?;
            } else {
                write!(f, "  {err}")?;
            }
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(err: ConfigError) -> Self {
        Self(vec![err])
    }
}
