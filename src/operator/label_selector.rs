//! Syntax check of Kubernetes label selectors such as
//! `app=billing,tier in (a,b),!legacy`.
//!
//! The operator only passes the selector on to the API server, so this module
//! does not build a structured selector. It exists so that a typo stops the
//! process at start with a message that points at the requirement, instead of
//! surfacing later as a failed list request inside the controllers.

use std::fmt;

/// Rejection of a label selector, naming the offending requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(String);

impl fmt::Display for SelectorError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Checks the syntax of an equality- or set-based label selector.
///
/// Accepted requirements, separated by commas: `key`, `!key`, `key=value`,
/// `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`,
/// `key>1` and `key<1`. Keys and values follow the Kubernetes rules. A key is
/// an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters. A value is at most 63 characters and may be empty.
///
/// # Errors
/// Returns a [`SelectorError`] naming the first invalid requirement.
pub fn check_label_selector(selector: &str) -> Result<(), SelectorError> {
    for requirement in split_requirements(selector)? {
        check_requirement(requirement.trim())
            .map_err(|reason| SelectorError(format!("requirement {requirement:?} {reason}")))?;
    }
    Ok(())
}

/// Splits at the commas that are not inside a `( … )` value set.
fn split_requirements(selector: &str) -> Result<Vec<&str>, SelectorError> {
    let mut requirements = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;

    for (index, character) in selector.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError("unbalanced ')'".to_string()))?;
            }
            ',' if depth == 0 => {
                requirements.push(&selector[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError("unbalanced '('".to_string()));
    }
    requirements.push(&selector[start..]);
    Ok(requirements)
}

fn check_requirement(requirement: &str) -> Result<(), String> {
    if requirement.is_empty() {
        return Err("is empty".to_string());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        return check_key(key.trim());
    }
    if let Some(open) = requirement.find('(') {
        return check_set_requirement(&requirement[..open], &requirement[open..]);
    }

    // Two-character operators first, so `!=` and `==` are not read as `=`.
    for operator in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = requirement.split_once(operator) {
            check_key(key.trim())?;
            let value = value.trim();
            return if operator == ">" || operator == "<" {
                value
                    .parse::<i64>()
                    .map(|_| ())
                    .map_err(|_| format!("needs an integer after {operator:?}"))
            } else {
                check_value(value)
            };
        }
    }
    check_key(requirement)
}

/// Checks `key in (…)` / `key notin (…)`; `head` is the part before `(`.
fn check_set_requirement(head: &str, set: &str) -> Result<(), String> {
    let words: Vec<&str> = head.split_whitespace().collect();
    let [key, operator] = words.as_slice() else {
        return Err("must read `key in (values)` or `key notin (values)`".to_string());
    };
    if *operator != "in" && *operator != "notin" {
        return Err(format!(
            "has unknown operator {operator:?}; expected in or notin"
        ));
    }
    check_key(key)?;

    let inner = set
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| "must end with the closing ')' of its value set".to_string())?;
    if inner.trim().is_empty() {
        return Err("has an empty value set".to_string());
    }
    inner
        .split(',')
        .try_for_each(|value| check_value(value.trim()))
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!("has an invalid key prefix {prefix:?}"));
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("has an invalid key {key:?}"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!("has an invalid value {value:?}"))
    }
}

/// Checks a label name or value: at most 63 characters, alphanumeric at both ends,
/// `-`, `_` and `.` allowed inside.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    text.len() <= 63
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Checks a DNS-1123 label: at most 63 lowercase alphanumerics or `-`, alphanumeric
/// at both ends. Namespaces are DNS labels.
pub fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    text.len() <= 63
        && is_lower_alphanumeric(*first)
        && is_lower_alphanumeric(*last)
        && bytes
            .iter()
            .all(|byte| is_lower_alphanumeric(*byte) || *byte == b'-')
}

/// Checks a DNS-1123 subdomain: at most 253 characters of dot-separated DNS labels.
/// Most object names, such as Secrets and Leases, are subdomains.
pub fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_selectors_pass() {
        let cases = [
            "app=billing",
            "app==billing",
            "app!=billing",
            "app",
            "!legacy",
            "example.com/team=voice",
            "tier in (a, b,c)",
            "tier notin (a)",
            "env=",
            "app=billing,tier in (a,b),!legacy",
            "replicas>2",
            "replicas < 10",
        ];
        for selector in cases {
            assert_eq!(check_label_selector(selector), Ok(()), "{selector}");
        }
    }

    #[test]
    fn invalid_selectors_fail() {
        let cases = [
            ("", "empty selector given explicitly"),
            ("app=billing,", "trailing comma leaves an empty requirement"),
            ("app=bad value", "space inside a value"),
            ("-app=x", "key starts with a dash"),
            (
                "Bad_Prefix.com/app=x",
                "prefix must be a lowercase DNS subdomain",
            ),
            ("tier in a,b", "set without parentheses"),
            ("tier in ()", "empty value set"),
            ("tier within (a)", "unknown set operator"),
            ("tier in (a", "unclosed parenthesis"),
            ("tier in a)", "stray closing parenthesis"),
            ("replicas>two", "non-integer comparison"),
            ("app=x/y", "slash in a value"),
        ];
        for (selector, reason) in cases {
            assert!(
                check_label_selector(selector).is_err(),
                "{selector}: {reason}"
            );
        }
    }

    #[test]
    fn error_names_the_requirement() {
        let error = check_label_selector("app=ok,tier=bad value").unwrap_err();

        assert!(error.to_string().contains("\"tier=bad value\""), "{error}");
    }

    #[test]
    fn dns_names_follow_kubernetes_rules() {
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("Team-a"));
        assert!(!is_dns_label("team.a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("plivo.credentials"));
        assert!(!is_dns_subdomain("plivo..credentials"));
        assert!(!is_dns_subdomain(""));
    }
}
