//! [`Condition`]: when a step runs, as a CEL expression (Common Expression
//! Language, through the `cel` crate) over the workflow's data.
//!
//! Variables: `input` (the workflow input) and `context` (the input merged
//! with every completed step's output so far). Examples:
//! `context.total > 1000`, `input.express == true`,
//! `has(context.coupon) && context.coupon != ""`.
//!
//! A parse error is reported when the definition is built; evaluating to
//! something other than a boolean, or referring to a missing field, is a
//! typed error when the step is reached (the workflow then fails — a
//! condition that cannot be decided must not be guessed).

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// The longest condition [`Condition::parse`] takes, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;

/// The parser's errors as `line:column: message` (at most three). Not the
/// errors' own `Display`: cel 0.15 pads a caret to the error's column with
/// a formatting width, which panics past column 65 535.
fn parse_errors(e: &cel::ParseErrors) -> String {
    let mut shown: Vec<String> = e
        .errors
        .iter()
        .take(3)
        .map(|p| format!("{}:{}: {}", p.pos.0, p.pos.1, p.msg))
        .collect();
    if e.errors.len() > 3 {
        shown.push(format!("and {} more", e.errors.len() - 3));
    }
    if shown.is_empty() {
        shown.push("the parser refused it".into());
    }
    shown.join("; ")
}

/// A parsed boolean CEL expression.
#[derive(Clone)]
pub struct Condition {
    source: Arc<str>,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    /// Parses `expression`; a syntax error, or an expression longer than
    /// [`MAX_CONDITION_LEN`] bytes, is `Config` with the parser's messages.
    pub fn parse(expression: &str) -> Result<Self> {
        let bad = |why: String| {
            Error::new(
                ErrorKind::Config,
                format!("invalid condition {expression:?}: {why}"),
            )
            .with_context("condition", expression)
        };
        if expression.len() > MAX_CONDITION_LEN {
            return Err(bad(format!(
                "{} bytes, more than the {MAX_CONDITION_LEN} a condition may have",
                expression.len()
            )));
        }
        let program = cel::Program::compile(expression).map_err(|e| bad(parse_errors(&e)))?;
        Ok(Condition {
            source: expression.into(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against the workflow `input` and current `context`.
    pub fn evaluate(&self, input: &serde_json::Value, context: &serde_json::Value) -> Result<bool> {
        let fail = |why: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("condition {:?} {why}", &*self.source),
            )
            .with_context("condition", &*self.source)
        };
        let mut ctx = cel::Context::default();
        let to_value =
            |v: &serde_json::Value| cel::to_value(v).map_err(|e| fail(format!("cannot read the data: {e}")));
        ctx.add_variable_from_value("input", to_value(input)?);
        ctx.add_variable_from_value("context", to_value(context)?);
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(fail(format!("evaluated to {other:?}, not a boolean"))),
            Err(e) => Err(fail(format!("could not be evaluated: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn true_false_and_errors() {
        let input = json!({"express": true});
        let ctx = json!({"total": 1200, "coupon": ""});
        assert!(
            Condition::parse("context.total > 1000")
                .expect("parse")
                .evaluate(&input, &ctx)
                .expect("eval")
        );
        assert!(
            !Condition::parse("context.total < 1000")
                .expect("parse")
                .evaluate(&input, &ctx)
                .expect("eval")
        );
        assert!(
            Condition::parse("input.express == true")
                .expect("parse")
                .evaluate(&input, &ctx)
                .expect("eval")
        );
        let err = Condition::parse("context.total +").expect_err("syntax");
        assert_eq!(err.kind(), ErrorKind::Config);
        let err = Condition::parse("context.total")
            .expect("parse")
            .evaluate(&input, &ctx)
            .expect_err("not bool");
        assert!(err.message().contains("not a boolean"), "{err}");
        let err = Condition::parse("context.missing > 1")
            .expect("parse")
            .evaluate(&input, &ctx)
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
