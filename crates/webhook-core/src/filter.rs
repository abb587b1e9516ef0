//! Filters in the JSON-match dialect that Hookdeck, Convoy and Outpost share: a JSON object
//! that the request must match, over `headers`, `body`, `query` and `path`.
//!
//! ```json
//! {"headers": {"x-github-event": "push"},
//!  "body": {"ref": {"$startsWith": "refs/heads/"}, "commits": {"$exist": true},
//!           "$or": [{"sender": {"type": "User"}}, {"forced": false}]}}
//! ```
//!
//! - A plain value must equal the field (numbers by value); against an array field it
//!   must equal one of its elements ("arrays that contain").
//! - A nested object matches a nested object, key by key; keys it does not name are free.
//! - An array matches an array field that contains a match for each of its elements.
//! - Operators: `$eq $neq $gt $gte $lt $lte $in $nin $exist $startsWith $endsWith $regex`
//!   on a field; `$or`, `$and` (lists of filters) and `$not` (a filter) anywhere.
//! - A missing field matches only `$exist: false`, `$neq`, `$nin` and a `$not` of what
//!   it fails.
//!
//! Filters are checked when the config is loaded ([`Filter::parse`]: unknown operators,
//! bad regexes and wrong operand types are errors naming the path in the filter).

use serde_json::{Map, Value};

/// A parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// Every part matches the same value.
    All(Vec<Node>),
    /// A field of an object value must match.
    Field(String, Box<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Op(Op),
    /// Equality with a plain value (or, against an array, one of its elements).
    Equals(Value),
    /// Each element matches some element of an array value.
    Contains(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Neq(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Value),
    Nin(Value),
    Exist(bool),
    StartsWith(String),
    EndsWith(String),
    Regex(Box<regex::Regex>),
}

/// A filter that cannot be used: where in it (`body.ref.$regex`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    /// Where in the filter.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Filter {
    /// Parse a filter object.
    pub fn parse(filter: &Value) -> Result<Self, FilterError> {
        match filter {
            Value::Object(map) => Ok(Self {
                root: parse_object(map, "")?,
            }),
            _ => Err(error("", "a filter is a JSON object")),
        }
    }

    /// Whether `input` (`{"headers": …, "body": …, "query": …, "path": …}`) matches.
    pub fn matches(&self, input: &Value) -> bool {
        self.root.matches(Some(input))
    }
}

fn error(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: if path.is_empty() {
            "filter".to_owned()
        } else {
            format!("filter.{path}")
        },
        message: message.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An object: operators and fields, all of which must match.
fn parse_object(map: &Map<String, Value>, path: &str) -> Result<Node, FilterError> {
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        let at = join(path, key);
        let node = match key.as_str() {
            "$or" | "$and" => {
                let Value::Array(items) = value else {
                    return Err(error(&at, "takes a list of filters"));
                };
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_value(item, &format!("{at}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "$or" {
                    Node::Or(nodes)
                } else {
                    Node::All(nodes)
                }
            }
            "$not" => Node::Not(Box::new(parse_value(value, &at)?)),
            op if op.starts_with('$') => Node::Op(parse_op(op, value, &at)?),
            field => Node::Field(field.to_owned(), Box::new(parse_value(value, &at)?)),
        };
        parts.push(node);
    }
    Ok(Node::All(parts))
}

/// What a field must be.
fn parse_value(value: &Value, path: &str) -> Result<Node, FilterError> {
    match value {
        Value::Object(map) => parse_object(map, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_value(item, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Contains),
        plain => Ok(Node::Equals(plain.clone())),
    }
}

fn parse_op(op: &str, value: &Value, path: &str) -> Result<Op, FilterError> {
    let string = || {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| error(path, "takes a string"))
    };
    let comparable = || match value {
        Value::Number(_) | Value::String(_) => Ok(value.clone()),
        _ => Err(error(path, "takes a number or a string")),
    };
    Ok(match op {
        "$eq" => Op::Eq(value.clone()),
        "$neq" => Op::Neq(value.clone()),
        "$gt" => Op::Gt(comparable()?),
        "$gte" => Op::Gte(comparable()?),
        "$lt" => Op::Lt(comparable()?),
        "$lte" => Op::Lte(comparable()?),
        "$in" | "$nin" => {
            if !matches!(value, Value::Array(_) | Value::String(_)) {
                return Err(error(path, "takes a list of values or a string"));
            }
            if op == "$in" {
                Op::In(value.clone())
            } else {
                Op::Nin(value.clone())
            }
        }
        "$exist" => Op::Exist(
            value
                .as_bool()
                .ok_or_else(|| error(path, "takes true or false"))?,
        ),
        "$startsWith" => Op::StartsWith(string()?),
        "$endsWith" => Op::EndsWith(string()?),
        "$regex" => {
            let pattern = string()?;
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| error(path, format!("not a valid regex: {e}")))?;
            Op::Regex(Box::new(regex))
        }
        other => {
            return Err(error(
                path,
                format!(
                    "unknown operator `{other}` (known: $eq $neq $gt $gte $lt $lte $in $nin \
                     $exist $startsWith $endsWith $regex $or $and $not)"
                ),
            ));
        }
    })
}

impl Node {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Node::All(parts) => parts.iter().all(|p| p.matches(value)),
            Node::Or(parts) => parts.iter().any(|p| p.matches(value)),
            Node::Not(part) => !part.matches(value),
            Node::Field(key, node) => match value {
                Some(Value::Object(map)) => node.matches(map.get(key)),
                // An array of objects: one element with a matching field is enough.
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| matches!(item, Value::Object(_)) && self.matches(Some(item))),
                _ => node.matches(None),
            },
            Node::Equals(expected) => value.is_some_and(|v| equal_or_contains(v, expected)),
            Node::Contains(nodes) => match value {
                Some(Value::Array(items)) => nodes
                    .iter()
                    .all(|node| items.iter().any(|item| node.matches(Some(item)))),
                _ => false,
            },
            Node::Op(op) => op.matches(value),
        }
    }
}

impl Op {
    fn matches(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return matches!(self, Op::Exist(false) | Op::Neq(_) | Op::Nin(_));
        };
        match self {
            Op::Exist(wanted) => *wanted,
            Op::Eq(expected) => equal_or_contains(value, expected),
            Op::Neq(expected) => !equal_or_contains(value, expected),
            Op::Gt(bound) => any_element(value, |v| compare(v, bound).is_some_and(|o| o.is_gt())),
            Op::Gte(bound) => any_element(value, |v| compare(v, bound).is_some_and(|o| o.is_ge())),
            Op::Lt(bound) => any_element(value, |v| compare(v, bound).is_some_and(|o| o.is_lt())),
            Op::Lte(bound) => any_element(value, |v| compare(v, bound).is_some_and(|o| o.is_le())),
            Op::In(set) => is_in(value, set),
            Op::Nin(set) => !is_in(value, set),
            Op::StartsWith(prefix) => any_element(value, |v| {
                v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))
            }),
            Op::EndsWith(suffix) => any_element(value, |v| {
                v.as_str().is_some_and(|s| s.ends_with(suffix.as_str()))
            }),
            Op::Regex(regex) => {
                any_element(value, |v| v.as_str().is_some_and(|s| regex.is_match(s)))
            }
        }
    }
}

/// `test` on the value, or on any element when it is an array.
fn any_element(value: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(test),
        other => test(other),
    }
}

/// Equal (numbers by value), or an array value that has an equal element.
fn equal_or_contains(value: &Value, expected: &Value) -> bool {
    equal(value, expected)
        || matches!(value, Value::Array(items) if !expected.is_array() && items.iter().any(|i| equal(i, expected)))
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(value: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
    match (value, bound) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

/// `$in`: one of a list (an array value: any of its elements), or a substring of a string.
fn is_in(value: &Value, set: &Value) -> bool {
    match set {
        Value::Array(options) => {
            any_element(value, |v| options.iter().any(|option| equal(v, option)))
        }
        Value::String(needle) => value.as_str().is_some_and(|s| s.contains(needle.as_str())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(filter: &Value, input: &Value) -> bool {
        Filter::parse(filter).unwrap().matches(input)
    }

    #[test]
    fn every_operator() {
        let body = json!({"body": {"n": 5, "s": "refs/heads/main", "tags": ["a", "b"], "flag": true,
                                    "nested": {"deep": {"x": 1}}, "items": [{"id": 1}, {"id": 2}]}});
        let cases = [
            (json!({"body": {"n": 5}}), true),
            (json!({"body": {"n": 5.0}}), true),
            (json!({"body": {"n": 6}}), false),
            (json!({"body": {"n": {"$eq": 5}}}), true),
            (json!({"body": {"n": {"$neq": 5}}}), false),
            (json!({"body": {"n": {"$gt": 4, "$lt": 6}}}), true),
            (json!({"body": {"n": {"$gte": 5, "$lte": 5}}}), true),
            (json!({"body": {"n": {"$gt": 5}}}), false),
            (json!({"body": {"s": {"$gt": "refs/a"}}}), true),
            (json!({"body": {"n": {"$in": [1, 5]}}}), true),
            (json!({"body": {"n": {"$nin": [1, 5]}}}), false),
            (json!({"body": {"s": {"$in": "heads"}}}), true),
            (json!({"body": {"s": {"$startsWith": "refs/heads/"}}}), true),
            (json!({"body": {"s": {"$endsWith": "/main"}}}), true),
            (
                json!({"body": {"s": {"$regex": "^refs/(heads|tags)/m"}}}),
                true,
            ),
            (json!({"body": {"s": {"$regex": "^tags"}}}), false),
            (
                json!({"body": {"flag": {"$exist": true}, "gone": {"$exist": false}}}),
                true,
            ),
            (json!({"body": {"gone": {"$exist": true}}}), false),
            (json!({"body": {"gone": {"$neq": 1}}}), true),
            (json!({"body": {"gone": 1}}), false),
            (json!({"body": {"tags": "a"}}), true),
            (json!({"body": {"tags": ["b", "a"]}}), true),
            (json!({"body": {"tags": ["a", "c"]}}), false),
            (json!({"body": {"tags": {"$in": ["c", "b"]}}}), true),
            (json!({"body": {"nested": {"deep": {"x": 1}}}}), true),
            (json!({"body": {"nested": {"deep": {"x": 2}}}}), false),
            (json!({"body": {"items": {"id": 2}}}), true),
            (json!({"body": {"items": [{"id": 2}, {"id": 1}]}}), true),
            (json!({"body": {"items": [{"id": 3}]}}), false),
            (json!({"body": {"$or": [{"n": 1}, {"flag": true}]}}), true),
            (json!({"body": {"$or": [{"n": 1}, {"flag": false}]}}), false),
            (json!({"body": {"$and": [{"n": 5}, {"flag": true}]}}), true),
            (
                json!({"body": {"$and": [{"n": 5}, {"flag": false}]}}),
                false,
            ),
            (json!({"body": {"$not": {"n": 5}}}), false),
            (json!({"body": {"n": {"$not": {"$gt": 10}}}}), true),
            (
                json!({"$or": [{"headers": {"x": "y"}}, {"body": {"n": 5}}]}),
                true,
            ),
            (json!({"headers": {"x": "y"}}), false),
        ];
        for (filter, expected) in cases {
            assert_eq!(check(&filter, &body), expected, "{filter}");
        }
    }

    #[test]
    fn bad_filters_name_their_place() {
        for (filter, path) in [
            (json!([1]), "filter"),
            (json!({"body": {"n": {"$near": 1}}}), "filter.body.n.$near"),
            (
                json!({"body": {"s": {"$regex": "("}}}),
                "filter.body.s.$regex",
            ),
            (json!({"body": {"s": {"$gt": true}}}), "filter.body.s.$gt"),
            (json!({"$or": {"a": 1}}), "filter.$or"),
            (
                json!({"body": {"$and": [{"x": {"$exist": "yes"}}]}}),
                "filter.body.$and[0].x.$exist",
            ),
        ] {
            let err = Filter::parse(&filter).unwrap_err();
            assert_eq!(err.path, path, "{filter}: {err}");
        }
    }
}
