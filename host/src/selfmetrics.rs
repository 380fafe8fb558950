//! wasmtel's own telemetry as `wasmtel.*` metrics, recorded through the normal pipeline every
//! `[telemetry] self_metrics_interval_ms`: per exporter, records and batches by outcome, faults,
//! the sandbox limits passed, restarts, time spent exporting, records pending, its state, and,
//! for an exporter with a spool, what the spool holds and found at start.

use std::sync::Arc;
use std::time::Duration;

use wasmtel_sdk::model::{KeyValue, Metric, MetricData, Number, NumberPoint, Scope, Temporality};

use crate::clock::now_unix_nano;
use crate::metrics::{MAX_SETS, Store};
use crate::routing::Routes;
use crate::stats::{ExporterState, ExporterStats};

/// The scope of wasmtel's own metrics.
fn scope() -> Scope {
    Scope {
        name: "wasmtel".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// The `wasmtel.*` metrics of `stats` and of the measurements that went to an overflow point
/// (by instrument): cumulative since `start`, taken at `now`.
pub(crate) fn metrics(
    stats: &[ExporterStats],
    overflows: &[(String, u64)],
    start: u64,
    now: u64,
) -> Vec<Metric> {
    let at = |attributes, value| NumberPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value,
    };
    let point = |exporter: &str, extra: Option<(&'static str, &'static str)>, value: Number| {
        let mut attributes = vec![KeyValue::new("exporter", exporter.to_string())];
        attributes.extend(extra.map(|(k, v)| KeyValue::new(k, v)));
        at(attributes, value)
    };
    let metric = |name: &str, description: &str, unit: &str, data: MetricData| Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        scope: scope(),
        data,
    };
    let sum = |points| MetricData::Sum {
        points,
        temporality: Temporality::Cumulative,
        monotonic: true,
    };
    let int = |n: u64| Number::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let by = |key: &'static str, counts: &dyn Fn(&ExporterStats) -> Vec<(&'static str, u64)>| {
        stats
            .iter()
            .flat_map(|s| {
                counts(s)
                    .into_iter()
                    .map(|(value, n)| point(&s.name, Some((key, value)), int(n)))
            })
            .collect::<Vec<_>>()
    };
    // A point per exporter that `which` picks.
    let each_of = |which: &dyn Fn(&ExporterStats) -> bool,
                   value: &dyn Fn(&ExporterStats) -> Number| {
        stats
            .iter()
            .filter(|s| which(s))
            .map(|s| point(&s.name, None, value(s)))
            .collect::<Vec<_>>()
    };
    let each = |value: &dyn Fn(&ExporterStats) -> Number| each_of(&|_| true, value);
    let mut metrics = vec![
        metric(
            "wasmtel.exporter.records",
            "Records by outcome: exported, or dropped and why",
            "{record}",
            sum(by("outcome", &|s| {
                let mut outcomes = vec![("exported", s.records_exported)];
                outcomes.extend(s.drops());
                outcomes
            })),
        ),
        metric(
            "wasmtel.exporter.batches",
            "Export calls by outcome",
            "{batch}",
            sum(by("outcome", &|s| {
                vec![
                    ("ok", s.batches_ok),
                    ("failed", s.batches_failed),
                    ("retried", s.batches_retried),
                    ("dropped", s.batches_dropped),
                ]
            })),
        ),
        metric(
            "wasmtel.exporter.faults",
            "Traps, deadline overruns, memory exhaustion",
            "{fault}",
            sum(each(&|s| int(s.faults))),
        ),
        metric(
            "wasmtel.exporter.limits",
            "Times a sandbox limit (the `limit` attribute, its config key) stopped the plugin: \
             a fault, a write refused, a log line suppressed",
            "{time}",
            sum(by("limit", &|s| {
                s.limits_passed
                    .iter()
                    .map(|&(limit, n)| (limit.key(), n))
                    .collect()
            })),
        ),
        metric(
            "wasmtel.exporter.restarts",
            "Fresh plugin instances after a fault or a failed start",
            "{restart}",
            sum(each(&|s| int(s.restarts))),
        ),
        metric(
            "wasmtel.exporter.export.time",
            "Time spent in export calls, laying out the batch included",
            "s",
            sum(each(&|s| Number::Double(s.export_nanos as f64 / 1e9))),
        ),
        metric(
            "wasmtel.exporter.pending",
            "Records queued or in a batch under way",
            "{record}",
            MetricData::Gauge {
                points: each(&|s| int(s.pending)),
            },
        ),
        metric(
            "wasmtel.exporter.state",
            "0 running, 1 parked, 2 failed",
            "",
            MetricData::Gauge {
                points: each(&|s| {
                    Number::Int(match s.state {
                        ExporterState::Running => 0,
                        ExporterState::Parked => 1,
                        ExporterState::Failed => 2,
                    })
                }),
            },
        ),
    ];
    // The spool's figures, for the exporters that have one.
    let spooled = |s: &ExporterStats| s.spool.is_some();
    if stats.iter().any(spooled) {
        let on = |value: &dyn Fn(&ExporterStats) -> Number| each_of(&spooled, value);
        let now_ms = now / 1_000_000;
        let gauge = |points| MetricData::Gauge { points };
        metrics.extend([
            metric(
                "wasmtel.exporter.spool.batches",
                "Batches in the spool, not yet delivered",
                "{batch}",
                gauge(on(&|s| int(s.spooled_batches))),
            ),
            metric(
                "wasmtel.exporter.spool.records",
                "Records in the spool, not yet delivered",
                "{record}",
                gauge(on(&|s| int(s.spooled))),
            ),
            metric(
                "wasmtel.exporter.spool.size",
                "Bytes of the spool on disk",
                "By",
                gauge(on(&|s| int(s.spooled_bytes))),
            ),
            metric(
                "wasmtel.exporter.spool.age",
                "How long the oldest spooled batch has waited (0: none)",
                "s",
                gauge(on(&|s| {
                    Number::Double(match s.spool_oldest_unix_ms {
                        0 => 0.0,
                        t => now_ms.saturating_sub(t) as f64 / 1e3,
                    })
                })),
            ),
            metric(
                "wasmtel.exporter.spool.replayed",
                "Records an earlier run left in the spool, found at start",
                "{record}",
                sum(on(&|s| int(s.spool_replayed))),
            ),
            metric(
                "wasmtel.exporter.spool.in_doubt",
                "Of those, records of a batch being exported when that run stopped: they may \
                 arrive twice",
                "{record}",
                sum(on(&|s| int(s.spool_in_doubt))),
            ),
            metric(
                "wasmtel.exporter.spool.skipped",
                "Bytes of the spool that did not read at start (a cut or damaged tail)",
                "By",
                sum(on(&|s| int(s.spool_skipped_bytes))),
            ),
        ]);
    }
    if !overflows.is_empty() {
        metrics.push(metric(
            "wasmtel.metric.overflow",
            &format!(
                "Measurements past an instrument's {MAX_SETS} attribute sets, folded into its \
                 overflow point"
            ),
            "{measurement}",
            sum(overflows
                .iter()
                .map(|(name, n)| at(vec![KeyValue::new("metric", name)], int(*n)))
                .collect()),
        ));
    }
    metrics
}

/// Sets the metrics of `routes` in `store` every `interval`, until the runtime stops; each
/// exporter collects them with its other metrics.
pub(crate) async fn run(routes: Routes, store: Arc<Store>, interval: Duration) {
    let start = now_unix_nano();
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        for metric in metrics(&routes.stats(), &store.overflows(), start, now_unix_nano()) {
            store.observe(&metric);
        }
    }
}
