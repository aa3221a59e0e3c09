//! The agent's instruments recorded into a recorder of their own (never the
//! process's: tests run side by side), read back through the exposition.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

pub struct Meter {
    recorder: PrometheusRecorder,
}

impl Meter {
    pub fn new() -> Meter {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in probe_agent::telemetry::HISTOGRAMS {
            builder = builder
                .set_buckets_for_metric(Matcher::Full((*name).into()), buckets)
                .expect("buckets");
        }
        Meter {
            recorder: builder.build_recorder(),
        }
    }

    /// Runs `make` with this recorder current: the instruments it registers record here.
    pub fn make<T>(&self, make: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, make)
    }

    /// The exposition, as a scrape sees it.
    pub fn text(&self) -> String {
        self.recorder.handle().render()
    }

    /// The unlabelled sample `name` (0 when absent).
    pub fn value(&self, name: &str) -> u64 {
        config::exposition::value(&self.text(), name, &[]).unwrap_or(0.0) as u64
    }

    /// The bucket bound holding quantile `q` of histogram `name`.
    pub fn quantile_bound(&self, name: &str, q: f64) -> Option<f64> {
        config::exposition::quantile_bound(&self.text(), name, q)
    }
}
