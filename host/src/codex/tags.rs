//! Codex's rules for metric names and tags, and the tags of a session.

use std::borrow::Cow;

/// The bucket bounds of durations in milliseconds ([`MetricsClient::record_duration`]), Codex's.
///
/// [`MetricsClient::record_duration`]: super::MetricsClient::record_duration
pub const MILLISECOND_BOUNDS: [f64; 34] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 1750.0,
    2000.0, 2250.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0, 5000.0, 6000.0, 7000.0, 7500.0, 8000.0,
    9000.0, 10000.0, 12000.0, 15000.0, 20000.0, 30000.0, 60000.0, 120000.0,
];

/// The bucket bounds of durations in seconds ([`MetricsClient::record_duration_seconds`]),
/// Codex's.
///
/// [`MetricsClient::record_duration_seconds`]: super::MetricsClient::record_duration_seconds
pub const SECOND_BOUNDS: [f64; 21] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 12.0,
    15.0, 20.0, 30.0, 60.0, 120.0,
];

/// The originators a metric's `originator` tag may name; any other is `other`.
pub const KNOWN_ORIGINATORS: [&str; 11] = [
    "codex_desktop",
    "codex-app-server",
    "codex_mcp_server",
    "codex_cli_rs",
    "codex-tui",
    "codex_vscode",
    "none",
    "codex_exec",
    "codex-cli",
    "codex_sdk_ts",
    "codex-app-server-sdk",
];

/// A measurement Codex's rules refuse; nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric name is empty.
    #[error("a metric name is empty")]
    EmptyMetricName,
    /// A metric name has a character other than ASCII letters, digits, `.`, `_` and `-`.
    #[error("metric name `{name}` has a character other than A-Z, a-z, 0-9, `.`, `_` and `-`")]
    InvalidMetricName {
        /// The name.
        name: String,
    },
    /// A tag key or value is empty.
    #[error("a tag {what} is empty")]
    EmptyTag {
        /// `key`, or `value of KEY`.
        what: String,
    },
    /// A tag key or value has a character other than ASCII letters, digits, `.`, `_`, `/` and
    /// `-`.
    #[error("tag {what} `{text}` has a character other than A-Z, a-z, 0-9, `.`, `_`, `/` and `-`")]
    InvalidTag {
        /// `key`, or `value of KEY`.
        what: String,
        /// The text.
        text: String,
    },
    /// A counter was given a negative increment.
    #[error("counter `{name}` was given {increment}: a counter only grows")]
    NegativeCounterIncrement {
        /// The counter.
        name: String,
        /// The increment.
        increment: i64,
    },
}

/// Whether `name` is a valid metric name: ASCII letters, digits, `.`, `_`, `-`, not empty.
pub fn validate_metric_name(name: &str) -> Result<(), MetricsError> {
    if name.is_empty() {
        return Err(MetricsError::EmptyMetricName);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(MetricsError::InvalidMetricName { name: name.into() });
    }
    Ok(())
}

fn tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/')
}

/// Whether `key` = `value` is a valid tag: each ASCII letters, digits, `.`, `_`, `/`, `-`, and
/// not empty.
pub fn validate_tag(key: &str, value: &str) -> Result<(), MetricsError> {
    // What is wrong is named only once something is (a valid tag allocates nothing).
    let what = |is_key: bool| {
        if is_key {
            "key".to_string()
        } else {
            format!("value of {key}")
        }
    };
    for (is_key, text) in [(true, key), (false, value)] {
        if text.is_empty() {
            return Err(MetricsError::EmptyTag { what: what(is_key) });
        }
        if !text.bytes().all(tag_char) {
            return Err(MetricsError::InvalidTag {
                what: what(is_key),
                text: text.into(),
            });
        }
    }
    Ok(())
}

/// `value` made a valid tag value, as Codex makes it: every other character becomes `_`, the
/// ends are trimmed of `_`, and it is cut at 256 bytes; `unspecified` if nothing is left or no
/// letter or digit is.
pub fn sanitize_metric_tag_value(value: &str) -> String {
    sanitized(value).into_owned()
}

/// Whether a measurement of `name` with `tags` passes Codex's rules.
pub(crate) fn check(name: &str, tags: &[(&str, &str)]) -> Result<(), MetricsError> {
    validate_metric_name(name)?;
    check_tags(tags)
}

/// Whether every one of `tags` passes Codex's rules.
pub(crate) fn check_tags(tags: &[(&str, &str)]) -> Result<(), MetricsError> {
    tags.iter()
        .try_for_each(|(key, value)| validate_tag(key, value))
}

/// A counter's `increment`, if Codex's rules take it: a name that passes, and no decrease.
pub(crate) fn check_increment(name: &str, increment: i64) -> Result<u64, MetricsError> {
    u64::try_from(increment).or_else(|_| {
        validate_metric_name(name)?;
        Err(MetricsError::NegativeCounterIncrement {
            name: name.into(),
            increment,
        })
    })
}

/// Calls `f` with `tags`, their values sanitized by Codex's rules (without allocating when
/// they pass already).
pub(crate) fn with_sanitized<const N: usize>(
    tags: [(&str, &str); N],
    f: impl FnOnce(&[(&str, &str)]),
) {
    let values = tags.map(|(_, v)| sanitized(v));
    let mut sanitized_tags = tags;
    for (tag, value) in sanitized_tags.iter_mut().zip(&values) {
        tag.1 = value.as_ref();
    }
    f(&sanitized_tags);
}

/// A boolean as Codex's tags say it.
pub(crate) fn truth(yes: bool) -> &'static str {
    if yes { "true" } else { "false" }
}

/// [`sanitize_metric_tag_value`], borrowing `value` when it is valid already.
pub(crate) fn sanitized(value: &str) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 256
        && bytes.iter().all(|&b| tag_char(b))
        && !value.starts_with('_')
        && !value.ends_with('_')
        && bytes.iter().any(u8::is_ascii_alphanumeric);
    if valid {
        return Cow::Borrowed(value);
    }
    let replaced: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() && tag_char(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = replaced.trim_matches('_');
    if !trimmed.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Cow::Borrowed("unspecified");
    }
    Cow::Owned(trimmed[..trimmed.len().min(256)].into())
}

/// The `originator` tag of `originator`: itself (sanitized) if it is one of
/// [`KNOWN_ORIGINATORS`], else `other`.
pub fn bounded_originator_tag_value(originator: &str) -> &'static str {
    let sanitized = sanitize_metric_tag_value(originator);
    KNOWN_ORIGINATORS
        .iter()
        .find(|known| **known == sanitized)
        .copied()
        .unwrap_or("other")
}

/// The tags Codex puts on every metric of a session: `auth_mode`, `session_source`,
/// `originator` (bounded to [`KNOWN_ORIGINATORS`]), `service_name`, `model`, `app.version`, in
/// that order, each sanitized.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTags {
    /// `auth_mode`, when known.
    pub auth_mode: Option<String>,
    /// `session_source`: `cli`, `exec`, `vscode`, ...
    pub session_source: String,
    /// `originator`.
    pub originator: String,
    /// `service_name`, when set.
    pub service_name: Option<String>,
    /// `model`.
    pub model: String,
    /// `app.version`.
    pub app_version: String,
}

impl SessionTags {
    /// [`SessionTags::tags`], once each passes Codex's rules.
    pub(crate) fn checked(&self) -> Result<Vec<(String, String)>, MetricsError> {
        let tags = self.tags();
        for (key, value) in &tags {
            validate_tag(key, value)?;
        }
        Ok(tags)
    }

    /// The tags, in Codex's order, sanitized; an unset optional one is left out.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        let mut push = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                tags.push((key.to_string(), sanitize_metric_tag_value(value)));
            }
        };
        push("auth_mode", self.auth_mode.as_deref());
        push("session_source", Some(&self.session_source));
        push(
            "originator",
            Some(bounded_originator_tag_value(&self.originator)),
        );
        push("service_name", self.service_name.as_deref());
        push("model", Some(&self.model));
        push("app.version", Some(&self.app_version));
        tags
    }
}
