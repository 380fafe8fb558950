//! Batches are built by `wasmtel_sdk::encode` (the one encoder of the record model) as the SDK's
//! types; this moves them into the host bindings' identical types, field by field. Lists of plain
//! records are converted in place, so this costs no allocation per item.

use wasmtel_sdk::types as sdk;

use super::bindings::types as wit;

/// A by-value conversion from an SDK type into its twin of the host bindings.
pub trait IntoWit<T> {
    fn into_wit(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl IntoWit<$t> for $t {
            fn into_wit(self) -> $t {
                self
            }
        }
    )*};
}
same!(u8, u32, u64, i64, f64, bool);

impl<A: IntoWit<B>, B> IntoWit<Option<B>> for Option<A> {
    fn into_wit(self) -> Option<B> {
        self.map(IntoWit::into_wit)
    }
}

impl<A: IntoWit<B>, B> IntoWit<Vec<B>> for Vec<A> {
    fn into_wit(self) -> Vec<B> {
        self.into_iter().map(IntoWit::into_wit).collect()
    }
}

/// Records: the same fields on both sides.
macro_rules! records {
    ($($name:ident { $($field:ident),* $(,)? })*) => {$(
        impl IntoWit<wit::$name> for sdk::$name {
            fn into_wit(self) -> wit::$name {
                wit::$name { $($field: self.$field.into_wit()),* }
            }
        }
    )*};
}

/// Enums and variants: the same cases on both sides, with or without a payload.
macro_rules! variants {
    ($($name:ident { $($case:ident $(($x:ident))?),* $(,)? })*) => {$(
        impl IntoWit<wit::$name> for sdk::$name {
            fn into_wit(self) -> wit::$name {
                match self {
                    $(sdk::$name::$case $(($x))? => wit::$name::$case $(($x.into_wit()))?),*
                }
            }
        }
    )*};
}

records! {
    Slice { offset, len }
    Range { start, len }
    KeyValue { key, value }
    Pool { data, values, attributes }
    Scope { name, version }
    TraceId { hi, lo }
    Event { time_unix_nano, name, severity_number, severity_text, body, attributes, trace_id,
        span_id, scope }
    EventBatch { resource, pool, events }
    SpanEvent { time_unix_nano, name, attributes }
    SpanLink { trace_id, span_id, attributes }
    Span { trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano,
        end_time_unix_nano, attributes, events, links, status, status_message, scope }
    SpanBatch { resource, pool, spans, events, links }
    NumberPoint { attributes, start_time_unix_nano, time_unix_nano, value }
    HistogramPoint { attributes, start_time_unix_nano, time_unix_nano, count, sum, min, max,
        bounds, counts }
    Sum { points, temporality, monotonic }
    Histogram { points, temporality }
    Metric { name, description, unit, scope, data }
    MetricBatch { resource, pool, metrics, number_points, histogram_points, bounds, counts }
}

variants! {
    Value { Empty, String(x), Boolean(x), Int(x), Double(x), Bytes(x), Array(x), Kvlist(x) }
    SpanKind { Internal, Server, Client, Producer, Consumer }
    StatusCode { Unset, Ok, Error }
    Temporality { Delta, Cumulative }
    Number { Int(x), Double(x) }
    MetricData { Sum(x), Gauge(x), Histogram(x) }
}
