//! Which failures of an insert are worth retrying, from sqlx's error and the SQLSTATE the
//! server reports (PostgreSQL and MySQL share the standard classes).

use webhook_core::ErrorClass;

/// The class of `err`: the server unreachable (`Unavailable`), a transient failure
/// (`Retryable`), or a refusal that the same row meets again (`Permanent`: bad data, a
/// missing table or column, wrong credentials, no permission).
pub fn class_of(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => ErrorClass::Unavailable,
        sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::Encode(_) => ErrorClass::Permanent,
        sqlx::Error::Database(db) => db
            .code()
            .map_or(ErrorClass::Retryable, |code| class_of_sqlstate(&code)),
        _ => ErrorClass::Retryable,
    }
}

/// The class of a SQLSTATE.
pub fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code.get(..2).unwrap_or("") {
        // connection exception; operator intervention (shutdown); insufficient resources
        // ("too many connections")
        "08" | "57" => ErrorClass::Unavailable,
        "53" | "40" | "55" | "58" | "XX" | "HY" => ErrorClass::Retryable,
        // data exception, integrity constraint, invalid authorization, syntax or access
        // rule (no such table or column, no permission), invalid catalog (no database)
        "22" | "23" | "28" | "42" | "3D" | "3F" | "0A" | "21" => ErrorClass::Permanent,
        _ => ErrorClass::Retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        assert_eq!(class_of_sqlstate("08006"), ErrorClass::Unavailable);
        assert_eq!(class_of_sqlstate("57P01"), ErrorClass::Unavailable);
        assert_eq!(class_of_sqlstate("40001"), ErrorClass::Retryable);
        assert_eq!(class_of_sqlstate("53300"), ErrorClass::Retryable);
        assert_eq!(class_of_sqlstate("22P02"), ErrorClass::Permanent);
        assert_eq!(class_of_sqlstate("42P01"), ErrorClass::Permanent);
        assert_eq!(class_of_sqlstate("28P01"), ErrorClass::Permanent);
        assert_eq!(class_of_sqlstate("23505"), ErrorClass::Permanent);
    }
}
