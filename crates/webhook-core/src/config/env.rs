use std::collections::HashMap;

use serde_json::Value;

/// Where `{$VAR}` placeholders take their values from.
///
/// Tests pass a map instead of changing the process environment.
pub struct Env {
    lookup: Box<Lookup>,
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// A fixed set of variables.
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self {
            lookup: Box::new(move |name| vars.get(name).cloned()),
        }
    }

    /// No variables at all.
    pub fn empty() -> Self {
        Self {
            lookup: Box::new(|_| None),
        }
    }

    /// Look a variable up.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }
}

/// A problem found while substituting: the JSON path and the message.
pub(crate) struct SubstitutionError {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// Replace `{$VAR}` / `{$VAR:default}` in every string value of `value` (not in keys).
pub(crate) fn substitute(
    value: &mut Value,
    env: &Env,
    path: &mut String,
    errors: &mut Vec<SubstitutionError>,
) {
    match value {
        Value::String(text) => {
            if text.contains("{$") {
                match substitute_str(text, env) {
                    Ok(new) => *text = new,
                    Err(message) => errors.push(SubstitutionError {
                        path: path.clone(),
                        message,
                    }),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute(item, env, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                substitute(item, env, path, errors);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Substitute placeholders in one string. Text that is not a well-formed placeholder is
/// kept as it is; the substituted values are used verbatim.
pub(crate) fn substitute_str(text: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{$") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_var_name(name) {
            // Not a placeholder: keep the text as written.
            out.push_str("{$");
            rest = after;
            continue;
        }
        match (env.get(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable `{name}` is not set (write `{{${name}:default}}` to give a default)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_map(HashMap::from([
            ("USER".to_owned(), "alice".to_owned()),
            ("PORT".to_owned(), "5673".to_owned()),
            ("ODD".to_owned(), "a$b&c id {$X}".to_owned()),
        ]))
    }

    #[test]
    fn whole_embedded_default_and_verbatim() {
        let env = env();
        assert_eq!(substitute_str("{$USER}", &env).unwrap(), "alice");
        assert_eq!(
            substitute_str("amqp://{$USER}@host:{$PORT}/", &env).unwrap(),
            "amqp://alice@host:5673/"
        );
        assert_eq!(substitute_str("{$NOPE:guest}", &env).unwrap(), "guest");
        assert_eq!(substitute_str("{$NOPE:}", &env).unwrap(), "");
        assert_eq!(substitute_str("{$NOPE:a:b}", &env).unwrap(), "a:b");
        // values are used verbatim, and not substituted again
        assert_eq!(substitute_str("{$ODD}", &env).unwrap(), "a$b&c id {$X}");
        // text that is not a placeholder stays
        assert_eq!(
            substitute_str("price {$ 5} {$", &env).unwrap(),
            "price {$ 5} {$"
        );
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let err = substitute_str("x{$MISSING_VAR}y", &env()).unwrap_err();
        assert!(err.contains("`MISSING_VAR`"), "{err}");
    }
}
