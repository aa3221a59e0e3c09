//! Reading the Prometheus text exposition that every role's exporter writes:
//! what tests and benchmarks use to read a role's metrics, rather than
//! reaching into its counters. It reads samples; it never writes the format.

/// One sample line: its metric name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name (a histogram's `_bucket`, `_sum` and `_count` are their own names).
    pub name: String,
    /// Label pairs, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample in `text`; comment lines, blank lines and lines that do not
/// parse are skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

/// The value of the sample named `name` whose labels include every pair of
/// `labels`; `None` when there is none.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

/// The families the TYPE comment lines declare, with their types, in order.
pub fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.strip_prefix('#')?.split_whitespace();
            if parts.next()? != "TYPE" {
                return None;
            }
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

/// The upper bound of the bucket of histogram `name` that holds quantile `q`
/// (0..1): an estimate never below the true value by more than one bucket.
/// `None` when the histogram has no observations.
pub fn quantile_bound(text: &str, name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples(text)
        .into_iter()
        .filter(|s| s.name == bucket)
        .filter_map(|s| {
            let le = s.label("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = (q * total).ceil();
    buckets
        .into_iter()
        .find(|(_, c)| *c >= rank)
        .map(|(b, _)| b)
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (pairs, after) = parse_labels(inner)?;
        labels = pairs;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns the pairs and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut pairs = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((pairs, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                value.push(if c == 'n' { '\n' } else { c });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 1 + i + 1);
                break;
            } else {
                value.push(c);
            }
        }
        pairs.push((key, value));
        s = &s[end?..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    /// What the exporter writes for a few instruments of each kind.
    fn exposition() -> String {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("h".into()), &[0.1, 1.0])
            .expect("buckets")
            .build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("a_total", "Things.");
            metrics::counter!("a_total", "kind" => "x", "check" => "q\"uo\\te,}\n").increment(3);
            metrics::counter!("a_total", "kind" => "y").increment(4);
            metrics::gauge!("plain").set(7.0);
            for v in [0.05, 0.5, 0.7, 3.0] {
                metrics::histogram!("h").record(v);
            }
        });
        recorder.handle().render()
    }

    #[test]
    fn samples_are_read_with_their_escaped_labels() {
        let text = exposition();
        assert_eq!(value(&text, "a_total", &[("kind", "y")]), Some(4.0));
        assert_eq!(
            value(&text, "a_total", &[("check", "q\"uo\\te,}\n")]),
            Some(3.0),
            "{text}"
        );
        assert_eq!(value(&text, "plain", &[]), Some(7.0));
        assert_eq!(value(&text, "h_count", &[]), Some(4.0));
        assert_eq!(value(&text, "a_total", &[("kind", "z")]), None);
        assert_eq!(value(&text, "missing", &[]), None);
        let mut kinds = families(&text);
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("a_total", "counter"),
                ("h", "histogram"),
                ("plain", "gauge")
            ]
            .map(|(n, k)| (n.to_string(), k.to_string()))
        );
    }

    #[test]
    fn quantile_bounds_come_from_cumulative_buckets() {
        let text = exposition();
        assert_eq!(quantile_bound(&text, "h", 0.25), Some(0.1));
        assert_eq!(quantile_bound(&text, "h", 0.5), Some(1.0));
        assert_eq!(quantile_bound(&text, "h", 0.99), Some(f64::INFINITY));
        assert_eq!(quantile_bound("", "h", 0.5), None);
    }
}
