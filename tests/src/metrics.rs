//! Reading the servers' Prometheus pages, so that tests can assert on one sample by its labels.

use crate::reqwest;

/// A server's `/metrics` page, checked to be Prometheus text (format 0.0.4).
pub async fn scrape_metrics(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the first sample of `name` whose labels include all of `labels`.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let matches = metric == name
                && labels.iter().all(|(key, wanted)| {
                    let pair = format!("{key}=\"{wanted}\"");
                    label_text.split(',').any(|found| found == pair)
                });
            matches.then(|| value.parse().ok()).flatten()
        })
}

/// [`metric_sample`], failing the test when there is no such sample.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sample(text, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"))
}
