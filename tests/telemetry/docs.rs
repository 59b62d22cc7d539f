//! docs/observability.md and docs/grafana-dashboard.json stay true to the catalog.

use massgen::telemetry::catalog;

const DASHBOARD: &str = include_str!("../../docs/grafana-dashboard.json");
const OBSERVABILITY_DOC: &str = include_str!("../../docs/observability.md");

/// Every `massgen_*` identifier in `text`.
fn metric_names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("massgen_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn is_catalog_series(name: &str) -> bool {
    catalog::ALL.iter().any(|m| {
        name == *m
            || catalog::HISTOGRAM_BUCKETS.iter().any(|(h, _)| {
                h == m
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{m}{s}"))
            })
    })
}

/// The PromQL expressions of the dashboard, with Grafana's variables made concrete.
fn dashboard_exprs() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs.push(
                expr.replace("$__rate_interval", "5m")
                    .replace("$__range", "1h")
                    .replace("$scope", ".*"),
            );
        }
    }
    exprs
}

/// The ```promql blocks of the observability doc.
fn doc_exprs() -> Vec<String> {
    OBSERVABILITY_DOC
        .split("```promql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn docs_and_dashboard_name_only_catalog_metrics_and_document_all_of_them() {
    for name in metric_names_in(DASHBOARD)
        .into_iter()
        .chain(metric_names_in(OBSERVABILITY_DOC))
    {
        assert!(
            is_catalog_series(&name),
            "{name} is not a metric of the catalog"
        );
    }
    for name in catalog::ALL {
        assert!(
            OBSERVABILITY_DOC.contains(&format!("| `{name}` |")),
            "{name} is missing from the metric table of docs/observability.md"
        );
    }
    assert!(dashboard_exprs().len() >= 10);
    assert!(doc_exprs().len() >= 5);
}

#[test]
fn dashboard_and_doc_promql_parse_under_promtool() {
    let exprs: Vec<String> = dashboard_exprs().into_iter().chain(doc_exprs()).collect();
    let mut rules = String::from("groups:\n  - name: massgen_docs\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let one_line = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        rules.push_str(&format!(
            "      - record: massgen:docs_check_{i}\n        expr: {}\n",
            serde_json::to_string(&one_line).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "promtool is needed to check the PromQL ({e}). Run .ci/setup (it installs the \
             Debian package `prometheus`), then run the tests again."
        ),
    };
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
