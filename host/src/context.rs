//! W3C trace context: a span's identity, and how it travels in `traceparent` and `tracestate`.

use wasmtel_sdk::model::{SpanId, TraceId};

/// The identity of a span, to make other spans its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanContext {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// Whether the trace is sampled: its spans recorded (W3C's `sampled` flag).
    pub sampled: bool,
}

impl SpanContext {
    /// The context of the span `span_id` of the trace `trace_id`, sampled or not.
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
        SpanContext {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// Whether both ids are set (not zero), as W3C requires of a context it carries. Only the
    /// build without the host makes an invalid one: the context of a span without a parent.
    pub fn is_valid(&self) -> bool {
        self.trace_id != 0 && self.span_id != 0
    }

    /// The W3C `traceparent` of the span: `00-<trace id>-<span id>-<flags>`, the flags `01` when
    /// sampled, else `00` (for an invalid context, zero ids, which no reader takes).
    pub fn traceparent(&self) -> String {
        let flags = u8::from(self.sampled);
        format!(
            "00-{:032x}-{:016x}-{flags:02x}",
            self.trace_id, self.span_id
        )
    }

    /// The span context of a W3C `traceparent` value (version `00`, lowercase hex, ids not
    /// zero); none if it is not one.
    pub fn from_traceparent(value: &str) -> Option<SpanContext> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if parts.next().is_some()
            || version != "00"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        let context = SpanContext {
            trace_id,
            span_id,
            sampled,
        };
        context.is_valid().then_some(context)
    }

    /// The span context of `TRACEPARENT` in the environment, if it holds a valid one (how a
    /// parent process passes its trace on).
    pub fn from_env() -> Option<SpanContext> {
        SpanContext::from_traceparent(&std::env::var("TRACEPARENT").ok()?)
    }

    /// The members of `TRACESTATE` in the environment (the trace state a parent process passes
    /// on with `TRACEPARENT`), to give [`SpanContext::inject`] after the configured ones.
    pub fn tracestate_from_env() -> Vec<(String, String)> {
        std::env::var("TRACESTATE")
            .map(|value| SpanContext::tracestate_members(&value))
            .unwrap_or_default()
    }

    /// The members of a W3C `tracestate` value (`key=value,...`), those that are not valid W3C
    /// members left out, at most 32.
    pub fn tracestate_members(value: &str) -> Vec<(String, String)> {
        value
            .split(',')
            .filter_map(|member| {
                let (key, value) = member.trim().split_once('=')?;
                w3c_member(key, value)
                    .is_ok()
                    .then(|| (key.to_string(), value.to_string()))
            })
            .take(32)
            .collect()
    }

    /// Puts the span into `headers` as W3C trace context: `traceparent`, and `tracestate` with
    /// `entries` (member, value; a key's first only) first, then the members already there that
    /// they do not name. An invalid context puts nothing (as OpenTelemetry's propagator).
    pub fn inject(&self, headers: &mut http::HeaderMap, entries: &[(String, String)]) {
        if !self.is_valid() {
            return;
        }
        if let Ok(value) = http::HeaderValue::from_str(&self.traceparent()) {
            headers.insert("traceparent", value);
        }
        let kept: Vec<String> = headers
            .get_all("tracestate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|member| member.trim().to_string())
            .filter(|member| {
                let key = member.split('=').next().unwrap_or_default();
                !member.is_empty() && !entries.iter().any(|(k, _)| k == key)
            })
            .collect();
        // A key once: the first entry that names it.
        let members: Vec<String> = entries
            .iter()
            .enumerate()
            .filter(|(i, (key, _))| !entries[..*i].iter().any(|(k, _)| k == key))
            .map(|(_, (k, v))| format!("{k}={v}"))
            .chain(kept)
            .take(32)
            .collect();
        headers.remove("tracestate");
        if !members.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&members.join(","))
        {
            headers.insert("tracestate", value);
        }
    }

    /// The span context of the W3C `traceparent` in `headers`, if there is a valid one.
    pub fn extract(headers: &http::HeaderMap) -> Option<SpanContext> {
        SpanContext::from_traceparent(headers.get("traceparent")?.to_str().ok()?)
    }
}

/// Whether `key=value` is a valid W3C tracestate list member.
pub(crate) fn w3c_member(key: &str, value: &str) -> Result<(), String> {
    let simple = |k: &str, max: usize| {
        !k.is_empty()
            && k.len() <= max
            && k.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && k.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '*' | '/')
            })
    };
    let key_ok = match key.split_once('@') {
        Some((tenant, system)) => simple(tenant, 241) && simple(system, 14),
        None => simple(key, 256) && key.starts_with(|c: char| c.is_ascii_lowercase()),
    };
    if !key_ok {
        return Err(format!(
            "`{key}` is not a W3C tracestate key (lowercase letters, digits, `_-*/`, optionally `tenant@system`)"
        ));
    }
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && value
            .chars()
            .all(|c| (' '..='~').contains(&c) && c != ',' && c != '=')
        && !value.ends_with(' ');
    if !value_ok {
        return Err(format!(
            "its value `{value}` is not a W3C tracestate value (printable ASCII without `,` and `=`, at most 256)"
        ));
    }
    Ok(())
}
