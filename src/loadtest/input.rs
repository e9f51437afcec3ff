//! Workflow inputs for a load test: one JSON object, with placeholders
//! filled per submission so transactions differ.
//!
//! In any string of the template:
//! * `{{n}}`: the submission's number (0, 1, 2, …);
//! * `{{rand}}`: a random 64-bit number;
//! * `{{uuid}}`: a new (time-ordered, v7) UUID.
//!
//! A string that is *only* `{{n}}` or `{{rand}}` becomes a JSON number.

use serde_json::Value;

use multiagents_core::{Error, ErrorKind, Result};

/// A template of the workflow input; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct InputTemplate {
    template: Value,
    has_placeholders: bool,
}

impl Default for InputTemplate {
    fn default() -> Self {
        InputTemplate {
            template: Value::Object(Default::default()),
            has_placeholders: false,
        }
    }
}

impl InputTemplate {
    /// A template from a JSON object.
    ///
    /// # Errors
    /// `InvalidInput` when `template` is not an object (a workflow input
    /// must be one).
    pub fn new(template: Value) -> Result<Self> {
        if !template.is_object() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a load test's input must be a JSON object, e.g. {\"order\": \"{{n}}\"}",
            )
            .with_operation("loadtest.input"));
        }
        let has_placeholders = template.to_string().contains("{{");
        Ok(InputTemplate {
            template,
            has_placeholders,
        })
    }

    /// The input of submission `n`.
    pub fn render(&self, n: u64) -> Value {
        if !self.has_placeholders {
            return self.template.clone();
        }
        fill(&self.template, n)
    }
}

fn fill(v: &Value, n: u64) -> Value {
    match v {
        Value::String(s) if s == "{{n}}" => Value::from(n),
        Value::String(s) if s == "{{rand}}" => Value::from(random()),
        Value::String(s) if s.contains("{{") => {
            let s = s.replace("{{n}}", &n.to_string());
            // Each occurrence its own value.
            let s = each(&s, "{{rand}}", || random().to_string());
            Value::String(each(&s, "{{uuid}}", || {
                multiagents_core::EnvelopeId::new().to_string()
            }))
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| fill(i, n)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v, n))).collect()),
        other => other.clone(),
    }
}

fn each(s: &str, placeholder: &str, value: impl Fn() -> String) -> String {
    let mut parts = s.split(placeholder);
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        out.push_str(&value());
        out.push_str(part);
    }
    out
}

fn random() -> u64 {
    multiagents_core::kit::random_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_per_submission() {
        let t = InputTemplate::new(
            json!({"id": "{{n}}", "ref": "order-{{n}}", "items": [{"sku": "{{rand}}"}], "fixed": 3}),
        )
        .expect("object");
        let a = t.render(7);
        assert_eq!(a["id"], json!(7));
        assert_eq!(a["ref"], json!("order-7"));
        assert!(a["items"][0]["sku"].is_u64());
        assert_eq!(a["fixed"], json!(3));
        let u = InputTemplate::new(json!({"k": "{{uuid}}"})).expect("object");
        assert_ne!(u.render(0), u.render(0));
        let two = InputTemplate::new(json!({"k": "{{rand}}-{{rand}}"}))
            .expect("object")
            .render(0);
        let (a, b) = two["k"].as_str().expect("text").split_once('-').expect("two");
        assert_ne!(a, b, "each occurrence its own value");
        assert_eq!(InputTemplate::default().render(5), json!({}));
    }

    #[test]
    fn the_template_must_be_an_object() {
        let err = InputTemplate::new(json!([1])).expect_err("not an object");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
