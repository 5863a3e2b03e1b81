//! Operations: the `/metrics` exposition of a running stirgate checked by `promtool`, and the
//! deployment files (Prometheus config and alert rules, Grafana dashboard and provisioning,
//! docker-compose.yml, Dockerfile, configs/stirgate.compose.toml) checked against each other
//! and against the metric names stirgate really exposes. No Docker engine is needed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_norway::Value as Yaml;

use crate::common::{assert_ok, repo_root, Setup, BIN};

#[test]
fn metrics_exposition_passes_promtool_and_counts_calls() {
    let s = Setup::start("", "");
    let uas = s.uas("uas").spawn();
    let result = s
        .uac("uac", 5)
        .args(["-r", "10"])
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("uac", &result);
    s.cdrs(5);
    // The gauge drops when the call task ends, right after its CDR line.
    for _ in 0..100 {
        if s.metric("stirgate_active_calls") == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exposition = s.stirgate.metrics(s.metrics);

    let out = promtool(&["check", "metrics"], Some(&exposition));
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n(\"no help text\": every metric needs a description, \
         metrics::describe_* at exporter install)\nexposition:\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let value = |selector: &str| {
        test_support::net::metric_value(&exposition, selector)
            .unwrap_or_else(|| panic!("{selector} is absent:\n{exposition}"))
    };
    assert_eq!(
        value("stirgate_calls_total{route=\"forward\",verstat=\"No-TN-Validation\"}"),
        5.0,
        "{exposition}"
    );
    assert_eq!(value("stirgate_active_calls"), 0.0, "{exposition}");
    assert_eq!(
        value("stirgate_sip_messages_total{direction=\"in\",method_or_status=\"INVITE\"}"),
        5.0
    );
    // Verification latency: a histogram with buckets from sub-millisecond to seconds.
    assert!(
        exposition.contains("# TYPE stirgate_verify_duration_seconds histogram"),
        "{exposition}"
    );
    for le in ["0.0005", "0.001", "0.01", "0.1", "1", "5", "+Inf"] {
        let selector = format!("stirgate_verify_duration_seconds_bucket{{le=\"{le}\"}}");
        assert!(
            exposition.contains(&format!("{selector} ")),
            "missing bucket {selector}:\n{exposition}"
        );
    }
    assert_eq!(
        value("stirgate_verify_duration_seconds_count"),
        5.0,
        "one verification per INVITE"
    );
    assert_eq!(
        value("stirgate_verify_duration_seconds_bucket{le=\"+Inf\"}"),
        5.0
    );

    // Everything exposed is named in the source constants the dashboard check uses.
    let known = exposed_metric_names();
    for family in exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(
            known.contains(family),
            "{family} is exposed but not a metric-name constant: {known:?}"
        );
    }
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let root = repo_root();
    let prom_dir = root.join("configs/prometheus");
    let config = prom_dir.join("prometheus.yml");
    let rules = prom_dir.join("alerts.yml");
    for args in [
        ["check", "config", path_str(&config)],
        ["check", "rules", path_str(&rules)],
    ] {
        let out = promtool(&args, None);
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The rules only name metrics stirgate exposes, and cover what an operator must hear about.
    let rules: Yaml = read_yaml(&rules);
    let mut alerts = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in seq(&rules["groups"]) {
        for rule in seq(&group["rules"]) {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("alert expr");
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name} has a summary"
            );
            alerts.insert(name.to_owned());
            exprs.push((name.to_owned(), expr.to_owned()));
        }
    }
    check_metric_names("configs/prometheus/alerts.yml", &exprs);
    let joined: String = exprs.iter().map(|(_, e)| e.as_str()).collect();
    for needed in [
        "stirgate_verifications_total{verstat=\"TN-Validation-Failed\"}",
        "reason=\"x5u_unavailable\"",
        "stirgate_cert_cache_misses_total",
        "stirgate_calls_total",
        "histogram_quantile(0.99",
        "stirgate_verify_duration_seconds_bucket",
        "stirgate_active_calls",
    ] {
        assert!(
            joined.contains(needed),
            "no alert uses {needed}: {alerts:?}"
        );
    }

    // The scrape target is the compose service at the port of its metrics.listen.
    let prom: Yaml = read_yaml(&config);
    let jobs = seq(&prom["scrape_configs"]);
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("stirgate"))
        .expect("a scrape job named stirgate");
    assert_eq!(
        job["metrics_path"].as_str().unwrap_or("/metrics"),
        "/metrics"
    );
    let targets: Vec<&str> = seq(&job["static_configs"])
        .iter()
        .flat_map(|c| seq(&c["targets"]))
        .filter_map(Yaml::as_str)
        .collect();
    let compose = read_yaml(&root.join("docker-compose.yml"));
    let metrics_port = port_of(deployment_config()["metrics"]["listen"].as_str().unwrap());
    assert_eq!(targets, [format!("stirgate:{metrics_port}")]);
    assert!(compose["services"]["stirgate"].is_mapping());
    // The container sees the config and its rule files where the config expects them.
    let mounts = bind_mounts(&compose["services"]["prometheus"]);
    let mut wanted = vec!["prometheus.yml".to_owned()];
    wanted.extend(
        seq(&prom["rule_files"])
            .iter()
            .filter_map(Yaml::as_str)
            .map(str::to_owned),
    );
    for file in wanted {
        let mount = (
            format!("./configs/prometheus/{file}"),
            format!("/etc/prometheus/{file}"),
        );
        assert!(
            mounts.contains(&mount),
            "prometheus mounts {mount:?}: {mounts:?}"
        );
    }
}

#[test]
fn grafana_dashboard_uses_only_exposed_metrics() {
    let root = repo_root();
    let path = root.join("configs/grafana/dashboards/stirgate.json");
    let text = std::fs::read_to_string(&path).expect("read dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert_eq!(dashboard["uid"], "stirgate");

    let datasources =
        read_yaml(&root.join("configs/grafana/provisioning/datasources/prometheus.yml"));
    let ds = &seq(&datasources["datasources"])[0];
    assert_eq!(ds["type"].as_str(), Some("prometheus"));
    assert_eq!(ds["url"].as_str(), Some("http://prometheus:9090"));
    let ds_uid = ds["uid"].as_str().expect("datasource uid");

    let mut exprs = Vec::new();
    let mut titles = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title");
        titles.push(title.to_owned());
        assert_eq!(panel["datasource"]["uid"], ds_uid, "{title}: data source");
        let targets = panel["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "{title} has queries");
        for target in targets {
            let expr = target["expr"].as_str().expect("target expr");
            exprs.push((title.to_owned(), expr.to_owned()));
        }
    }
    check_metric_names("configs/grafana/dashboards/stirgate.json", &exprs);

    // The panels the operator guide describes.
    let uses = |needle: &str| exprs.iter().any(|(_, e)| e.contains(needle));
    for needle in [
        "sum by (route, verstat) (rate(stirgate_calls_total",
        "histogram_quantile(0.99, sum by (le) (rate(stirgate_verify_duration_seconds_bucket",
        "stirgate_cert_cache_hits_total",
        "stirgate_cert_fetch_duration_seconds_bucket",
        "reason=~\"x5u_unavailable",
        "stirgate_active_calls",
        "sum by (direction, method_or_status) (rate(stirgate_sip_messages_total",
        "stirgate_notifications_total{result=\"failed\"}",
    ] {
        assert!(uses(needle), "no panel queries {needle}: {titles:?}");
    }

    // The provisioning provider reads the directory compose mounts the dashboards into.
    let providers = read_yaml(&root.join("configs/grafana/provisioning/dashboards/stirgate.yml"));
    let provider_path = seq(&providers["providers"])[0]["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_owned();
    let compose = read_yaml(&root.join("docker-compose.yml"));
    let mounts = bind_mounts(&compose["services"]["grafana"]);
    assert!(
        mounts
            .iter()
            .any(|(src, dst)| src == "./configs/grafana/dashboards" && *dst == provider_path),
        "grafana mounts the dashboards at {provider_path}: {mounts:?}"
    );
}

#[test]
fn compose_file_matches_the_deployment_config_and_dockerfile() {
    let root = repo_root();
    let compose = read_yaml(&root.join("docker-compose.yml"));
    let cfg = deployment_config();
    let services = compose["services"].as_mapping().expect("services");
    let stirgate = &compose["services"]["stirgate"];

    // It runs the mounted deployment config.
    let command: Vec<&str> = seq(&stirgate["command"])
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(command, ["run", "--config", "/etc/stirgate/stirgate.toml"]);
    let mounts = bind_mounts(stirgate);
    assert!(
        mounts.contains(&(
            "./configs/stirgate.compose.toml".to_owned(),
            "/etc/stirgate/stirgate.toml".to_owned()
        )),
        "{mounts:?}"
    );

    // Every file any service mounts exists in the repository.
    for (name, service) in services {
        for (src, _) in bind_mounts(service) {
            assert!(
                root.join(&src).exists(),
                "service {name:?} mounts {src}, which does not exist"
            );
        }
    }

    // Published ports: the SIP listeners, the RTP range and the metrics port.
    let published: Vec<(String, String)> = seq(&stirgate["ports"])
        .iter()
        .map(|p| container_port(p.as_str().expect("port as a string")))
        .collect();
    for listen in seq_toml(&cfg["sip"]["listen"]) {
        let (proto, addr) = listen.split_once(':').expect("PROTO:HOST:PORT");
        let port = port_of(addr);
        assert!(
            published.contains(&(port.to_string(), proto.to_owned())),
            "sip.listen {listen} is not published: {published:?}"
        );
    }
    let rtp = cfg["media"]["rtp_ports"].as_str().expect("media.rtp_ports");
    assert!(
        published.contains(&(rtp.to_owned(), "udp".to_owned())),
        "media.rtp_ports {rtp} is not published: {published:?}"
    );
    let metrics_port = port_of(cfg["metrics"]["listen"].as_str().expect("metrics.listen"));
    assert!(
        published.contains(&(metrics_port.to_string(), "tcp".to_owned())),
        "metrics.listen is not published: {published:?}"
    );

    // The named volumes hold the voicemail, list store, CDR and certificate cache directories.
    let volumes = compose["volumes"].as_mapping().expect("top-level volumes");
    let named: Vec<(String, String)> = seq(&stirgate["volumes"])
        .iter()
        .filter_map(Yaml::as_str)
        .filter_map(|v| {
            let mut parts = v.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (!src.starts_with('.') && !src.starts_with('/'))
                .then(|| (src.to_owned(), dst.to_owned()))
        })
        .collect();
    for (volume, _) in &named {
        assert!(
            volumes.contains_key(volume.as_str()),
            "volume {volume} is declared"
        );
    }
    let dirs = [
        (
            "voicemail.dir",
            cfg["voicemail"]["dir"].as_str().map(PathBuf::from),
        ),
        ("lists.path", parent(cfg["lists"]["path"].as_str())),
        ("cdr.path", parent(cfg["cdr"]["path"].as_str())),
        (
            "stir.cache_file",
            parent(cfg["stir"]["cache_file"].as_str()),
        ),
    ];
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("read Dockerfile");
    for (key, dir) in dirs {
        let dir = dir.unwrap_or_else(|| panic!("{key} is set"));
        let (volume, target) = named
            .iter()
            .find(|(_, dst)| dir.starts_with(dst))
            .unwrap_or_else(|| {
                panic!("{key} ({}) is on no named volume: {named:?}", dir.display())
            });
        // The image creates the mount point so the volume starts out owned by the stirgate user.
        assert!(
            dockerfile.contains(target.as_str()),
            "the Dockerfile creates {target} (volume {volume})"
        );
    }

    // The load profile is optional.
    let profiles: Vec<&str> = seq(&compose["services"]["sipp-load"]["profiles"])
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(profiles, ["load"]);

    // The Dockerfile: multi-stage, non-root, copies what the config refers to.
    assert!(dockerfile.contains("FROM rust:1-bookworm AS build"));
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.lines().any(|l| l.trim() == "USER stirgate"));
    assert!(dockerfile.contains("/src/target/release/stirgate /usr/local/bin/stirgate"));
    // The build stage has what the build reads (include_str! of configs/ and certs/).
    for dir in ["crates", "configs", "certs"] {
        assert!(
            dockerfile
                .lines()
                .any(|l| l.trim() == format!("COPY {dir} {dir}")),
            "the build stage copies {dir}/"
        );
    }
    let copies: Vec<(String, String)> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=build /src/"))
        .filter_map(|l| {
            let (src, dst) = l.trim().split_once(' ')?;
            Some((src.to_owned(), dst.trim().to_owned()))
        })
        .collect();
    for wanted in ["certs", "crates/media/prompts", "configs"] {
        assert!(
            copies.iter().any(|(src, _)| src == wanted),
            "the Dockerfile copies {wanted}: {copies:?}"
        );
    }

    // check-config on a copy whose image paths are mapped back to the repository through the
    // Dockerfile's COPY lines: the config is valid and every file it names is in the image.
    let text = std::fs::read_to_string(root.join("configs/stirgate.compose.toml"))
        .expect("read compose config");
    let mut host_text = text.clone();
    for key in [&cfg["stir"]["trust_anchors"], &cfg["media"]["prompt_dir"]] {
        let image_path = key.as_str().expect("a path");
        let (src, dst) = copies
            .iter()
            .filter(|(_, dst)| Path::new(image_path).starts_with(dst))
            .max_by_key(|(_, dst)| dst.len())
            .unwrap_or_else(|| panic!("no Dockerfile COPY puts {image_path} in the image"));
        let rest = Path::new(image_path).strip_prefix(dst).expect("prefix");
        let host_path = root.join(src).join(rest);
        assert!(host_path.exists(), "{} exists", host_path.display());
        host_text = host_text.replace(
            &format!("\"{image_path}\""),
            &format!("\"{}\"", host_path.display()),
        );
    }
    assert_ne!(host_text, text, "image paths were rewritten");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("stirgate.toml");
    std::fs::write(&copy, host_text).expect("write config copy");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&copy)
        .current_dir(dir.path())
        .output()
        .expect("run stirgate check-config");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stirgate check-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `promtool` with `args` (and `stdin`); fails the test with install instructions when the
/// tool is missing (tests never skip silently).
fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let bin = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "promtool not found: install the Debian package `prometheus` \
                 (`apt-get install prometheus`; ./scripts/test.sh does this)"
            )
        });
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut pipe = child.stdin.take().expect("promtool stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write to promtool");
    drop(pipe);
    child.wait_with_output().expect("promtool output")
}

/// The names stirgate exposes, from the `const NAME: &str = "stirgate_..."` metric-name
/// constants in the crates' sources; histograms (constants passed to `histogram!` or to a
/// histogram handle's `Handle::<Histogram>::new`) add their
/// `_bucket`, `_sum` and `_count` series.
fn exposed_metric_names() -> BTreeSet<String> {
    let mut constants = Vec::new();
    let mut histogram_idents = BTreeSet::new();
    let crates = repo_root().join("crates");
    for entry in std::fs::read_dir(&crates).expect("read crates/").flatten() {
        for file in rust_files(&entry.path().join("src")) {
            let text = std::fs::read_to_string(&file).expect("read source");
            for line in text.lines() {
                if let Some((ident, name)) = metric_constant(line) {
                    constants.push((ident, name));
                }
                // `histogram!(NAME` or a handle `Handle::<Histogram>::new(NAME`.
                let rest = line
                    .split("histogram!(")
                    .nth(1)
                    .or_else(|| line.split("Histogram>::new(").nth(1));
                if let Some(rest) = rest {
                    let ident = rest.split([')', ',']).next().unwrap_or("");
                    let ident = ident.rsplit("::").next().unwrap_or("").trim();
                    histogram_idents.insert(ident.to_owned());
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    for (ident, name) in constants {
        if histogram_idents.contains(&ident) {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name);
    }
    assert!(
        names.contains("stirgate_calls_total")
            && names.contains("stirgate_verify_duration_seconds_bucket"),
        "metric-name constants found in the sources: {names:?}"
    );
    names
}

/// `pub const IDENT: &str = "stirgate_...";` → (IDENT, name).
fn metric_constant(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let rest = line.strip_prefix("pub ").unwrap_or(line);
    let rest = rest.strip_prefix("const ")?;
    let (ident, value) = rest.split_once(": &str = \"")?;
    let name = value.strip_suffix("\";")?;
    name.starts_with("stirgate_")
        .then(|| (ident.trim().to_owned(), name.to_owned()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `stirgate_*` name in the PromQL expressions is one stirgate exposes, and every
/// expression queries stirgate (or Prometheus's own `up` of the stirgate job).
fn check_metric_names(file: &str, exprs: &[(String, String)]) {
    let known = exposed_metric_names();
    for (what, expr) in exprs {
        let names = promql_metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{job=\"stirgate\"}"),
            "{file}: {what}: {expr} queries no stirgate metric"
        );
        for name in names {
            assert!(
                known.contains(&name),
                "{file}: {what}: {name} is not a metric stirgate exposes (known: {known:?})"
            );
        }
    }
}

/// The `stirgate_*` identifiers of a PromQL expression, outside string literals.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = None;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if let Some(quote) = in_string {
            if c == quote {
                in_string = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("stirgate_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        if c == '"' || c == '\'' || c == '`' {
            in_string = Some(c);
        }
    }
    names
}

/// The deployment config of the compose stack.
fn deployment_config() -> toml::Value {
    let text = std::fs::read_to_string(repo_root().join("configs/stirgate.compose.toml"))
        .expect("read configs/stirgate.compose.toml");
    toml::from_str(&text).expect("configs/stirgate.compose.toml is TOML")
}

fn read_yaml(path: &Path) -> Yaml {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is YAML: {e}", path.display()))
}

fn seq(v: &Yaml) -> &[Yaml] {
    v.as_sequence().map_or(&[], Vec::as_slice)
}

fn seq_toml(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
        .unwrap_or_default()
}

/// A service's bind mounts (short syntax, source starting with `.`) as (source, target).
fn bind_mounts(service: &Yaml) -> Vec<(String, String)> {
    seq(&service["volumes"])
        .iter()
        .filter_map(Yaml::as_str)
        .filter(|v| v.starts_with('.'))
        .map(|v| {
            let mut parts = v.split(':');
            let src = parts.next().unwrap_or("").trim_end_matches('/').to_owned();
            let dst = parts.next().unwrap_or("").trim_end_matches('/').to_owned();
            (src, dst)
        })
        .collect()
}

/// The container side of a short-syntax port (`[IP:]HOST:CONTAINER[/PROTO]`) as
/// (port or range, protocol).
fn container_port(spec: &str) -> (String, String) {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let container = ports.rsplit(':').next().unwrap_or(ports);
    (container.to_owned(), proto.to_owned())
}

/// The port of `HOST:PORT`.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr} has a port"))
}

fn parent(path: Option<&str>) -> Option<PathBuf> {
    Path::new(path?).parent().map(Path::to_owned)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The headless Chromium of Debian's `chromium` package; the tests never skip silently.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chromium not found: install Debian's `chromium` package (scripts/test.sh does)")
        })
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,900",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(std::iter::once(format!(
        "--user-data-dir={}",
        profile.display()
    )))
    .collect()
}

#[test]
fn status_page_shows_recent_calls_in_a_real_browser() {
    let s = Setup::start("", "");
    let uas = s.uas("uas").spawn();
    let result = s
        .uac("uac", 2)
        .args(["-r", "5"])
        .run(Duration::from_secs(60));
    uas.kill();
    assert_ok("two calls", &result);
    s.cdrs(2);

    // The HTML itself: the calls table with both calls, and the other sections.
    let html = test_support::net::http_get(s.status, "/");
    for id in [
        "id=\"calls\"",
        "id=\"certs\"",
        "id=\"hour\"",
        "id=\"active\"",
    ] {
        assert!(html.contains(id), "{id} missing: {html}");
    }
    let calls_table = html
        .split("id=\"calls\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or("");
    assert_eq!(calls_table.matches("<tr><td>").count(), 2, "{calls_table}");
    assert!(
        calls_table.contains("sipp") && calls_table.contains("forwarded"),
        "{calls_table}"
    );

    // In a real browser: the DOM has the rows, and the screenshot shows the table (its header
    // rows are painted in the page's header blue).
    let profile = tempfile::tempdir().expect("profile");
    let url = format!("http://{}/", s.status);
    let dom = Command::new(chromium())
        .args(chromium_args(profile.path()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium --dump-dom");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<table id=\"calls\">"),
        "the browser built the table: {dom}"
    );
    let shot = s.dir.path().join("status.png");
    let out = Command::new(chromium())
        .args(chromium_args(profile.path()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium --screenshot");
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("png"));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("png frame");
    let channels = info.color_type.samples();
    let blue = pixels
        .chunks(channels)
        .filter(|p| {
            p.len() >= 3
                && (i32::from(p[0]) - 31).abs() < 12
                && (i32::from(p[1]) - 111).abs() < 12
                && (i32::from(p[2]) - 235).abs() < 12
        })
        .count();
    assert!(
        blue > 2000,
        "table headers visible in the screenshot ({blue} header-blue pixels)"
    );
}
