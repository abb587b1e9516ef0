//! jq programs: compiled with jaq (parent, at config load, for errors; worker, to run) and
//! run on one request.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use webhook_core::transform::ProgramError;

/// The variables bound for a program, in the order their values are passed.
pub(crate) const VARIABLES: [&str; 7] = [
    "$headers",
    "$query",
    "$path",
    "$method",
    "$webhook_id",
    "$request_id",
    "$received_at",
];

/// Native filters left out: they read the environment or the clock (a transform is the
/// same on every retry and replay), stop the process, or write to its stderr.
const LEFT_OUT: &[&str] = &[
    "env",
    "now",
    "halt",
    "halt_error",
    "input_filename",
    "localtime",
    "strflocaltime",
    "mktime_local",
    "debug_empty",
    "stderr_empty",
    "input",
    "inputs",
];

type Data = data::JustLut<Val>;

/// A compiled program.
pub(crate) struct Program {
    filter: jaq_core::Filter<Data>,
}

impl Program {
    /// Compile `code`; an error names its position in `code`.
    pub(crate) fn compile(code: &str) -> Result<Self, ProgramError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        // The standard definitions use some of the left-out natives, so they stay defined
        // and answer with an error when run.
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .map(|(name, arity, native)| {
                if LEFT_OUT.contains(&name) {
                    jaq_core::native::run::<Data>((name, arity, left_out))
                } else {
                    (name, arity, native)
                }
            });
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errors| load_error(code, errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(VARIABLES)
            .compile(modules)
            .map_err(|errors| compile_error(code, errors))?;
        Ok(Self { filter })
    }

    /// Run on `input` with `vars` (the values of [`VARIABLES`], in order): the first
    /// output, or `None` for none. A second output is an error (a destination gets one
    /// body), as is an error the program raises.
    pub(crate) fn run(&self, input: Val, vars: Vec<Val>) -> Result<Option<Val>, String> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new(vars));
        let mut outputs = self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr);
        let first = match outputs.next() {
            None => return Ok(None),
            Some(Ok(value)) => value,
            Some(Err(err)) => return Err(format!("the program failed: {err}")),
        };
        match outputs.next() {
            None => Ok(Some(first)),
            Some(Err(err)) => Err(format!("the program failed: {err}")),
            Some(Ok(_)) => Err(
                "the program gave more than one output; a destination gets one \
                 body (collect them with [...] or take first(...))"
                    .to_owned(),
            ),
        }
    }
}

/// What a left-out native does when run.
fn left_out(_: jaq_core::Cv<'_, Data>) -> jaq_core::ValXs<'_, Val> {
    jaq_core::box_iter::box_once(Err(jaq_core::Exn::from(jaq_core::Error::str(
        "not available to transforms (environment, clock, process control and printing are \
         off, so a transform gives the same output on every retry)",
    ))))
}

fn load_error<P>(code: &str, errors: jaq_core::load::Errors<&str, P>) -> ProgramError {
    use jaq_core::load::Error;
    let first = errors.into_iter().next().map(|(_, error)| error);
    match first {
        Some(Error::Lex(errors)) => match errors.first() {
            Some((expect, found)) => {
                let expected = match expect {
                    jaq_core::load::lex::Expect::Delim(open) => match *open {
                        "(" => "closing parenthesis",
                        "[" => "closing bracket",
                        "{" => "closing brace",
                        _ => "closing quote",
                    },
                    other => lex_expect(other),
                };
                at(code, found, format!("expected {expected}"))
            }
            None => ProgramError::at(code, 0, "cannot be read"),
        },
        Some(Error::Parse(errors)) => match errors.first() {
            Some((expect, found)) => {
                let found_text = if found.is_empty() {
                    "the end of the program".to_owned()
                } else {
                    format!("`{}`", found.chars().take(20).collect::<String>())
                };
                at(
                    code,
                    found,
                    format!("expected {}, found {found_text}", expect.as_str()),
                )
            }
            None => ProgramError::at(code, 0, "cannot be parsed"),
        },
        Some(Error::Io(errors)) => match errors.first() {
            Some((path, message)) => at(code, path, format!("cannot load module: {message}")),
            None => ProgramError::at(code, 0, "cannot load a module"),
        },
        None => ProgramError::at(code, 0, "cannot be loaded"),
    }
}

fn lex_expect(expect: &jaq_core::load::lex::Expect<&str>) -> &'static str {
    use jaq_core::load::lex::Expect;
    match expect {
        Expect::Digit => "a digit",
        Expect::Ident => "an identifier",
        Expect::Escape => "a string escape sequence",
        Expect::Unicode => "a 4-digit hexadecimal code point",
        _ => "a token",
    }
}

fn compile_error<P>(code: &str, errors: jaq_core::compile::Errors<&str, P>) -> ProgramError {
    let first = errors
        .into_iter()
        .next()
        .and_then(|(_, errors)| errors.into_iter().next());
    match first {
        Some((name, undefined)) => {
            let what = undefined.as_str();
            let hint = if LEFT_OUT.contains(&name) || name == "$ENV" {
                " (not available to transforms: it would read the environment or the clock, \
                 or stop the process)"
            } else {
                ""
            };
            at(code, name, format!("undefined {what} `{name}`{hint}"))
        }
        None => ProgramError::at(code, 0, "cannot be compiled"),
    }
}

/// An error at `part`, a slice of `code` (or at its start when it is not one).
fn at(code: &str, part: &str, message: String) -> ProgramError {
    let start = code.as_ptr() as usize;
    let offset = (part.as_ptr() as usize)
        .checked_sub(start)
        .filter(|&offset| offset <= code.len())
        .unwrap_or(0);
    ProgramError::at(code, offset, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, input: &str) -> Result<Option<String>, String> {
        let program = Program::compile(code).map_err(|e| e.to_string())?;
        let input = jaq_json::read::parse_single(input.as_bytes()).map_err(|e| e.to_string())?;
        let vars = VARIABLES
            .iter()
            .map(|name| Val::from(name.trim_start_matches('$').to_owned()))
            .collect();
        Ok(program.run(input, vars)?.map(|v| v.to_string()))
    }

    #[test]
    fn runs_with_variables() {
        assert_eq!(
            run("{a: .x, p: $path, m: $method}", r#"{"x": [1, 2]}"#),
            Ok(Some(r#"{"a":[1,2],"p":"path","m":"method"}"#.to_owned()))
        );
        assert_eq!(run("select(.x == 2)", r#"{"x": 1}"#), Ok(None));
        assert!(run(".[]", "[1, 2]").is_err_and(|e| e.contains("more than one")));
        assert!(run("error(\"no\")", "1").is_err_and(|e| e.contains("failed")));
        for left_out in ["now", "env", "halt", "input", "debug(1)", "stderr"] {
            let out = run(left_out, "1");
            assert!(
                out.as_ref().is_err_and(|e| e.contains("not available")),
                "{left_out}: {out:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_position() {
        let err = Program::compile(".a |\n  map(.b").err();
        assert_eq!(err.as_ref().map(|e| e.line), Some(2), "{err:?}");
        let err = Program::compile("{a: 1} | nosuch").err();
        assert_eq!(
            err.as_ref().map(|e| (e.line, e.column)),
            Some((1, 10)),
            "{err:?}"
        );
        assert!(Program::compile("$ENV").is_err());
    }
}
