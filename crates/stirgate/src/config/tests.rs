//! Unit tests of the config loader: every section validates with its key, the example
//! documents every key.

use ::sip::limits::DenyAction;
use b2bua::RouteAction;
use sip_proto::endpoint::Transport;

use super::*;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The single fixed destination of the forward targets.
fn peer(cfg: &Config) -> sip_proto::endpoint::Peer {
    cfg.forward.fixed.as_ref().expect("fixed destinations")[0].peer
}

#[test]
fn forward_targets_list_dns_servers_and_their_errors() {
    let cfg = Config::from_toml_at(
        "[forward]\ntargets = [\"sip:10.0.0.5:5060\", \"sip:10.0.0.6:5060;transport=tcp\"]\n\
         dns_servers = [\"127.0.0.1:5353\", \"192.0.2.53\"]\n",
        &repo(),
    )
    .unwrap();
    let fixed = cfg.forward.fixed.as_ref().expect("IP targets need no DNS");
    assert_eq!(fixed.len(), 2);
    assert_eq!(fixed[1].peer.transport, Transport::Tcp);
    assert_eq!(fixed[1].uri, "sip:10.0.0.6:5060;transport=tcp");
    assert_eq!(
        cfg.dns_servers,
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "192.0.2.53:53".parse().unwrap()
        ]
    );
    // A name is resolved per call (RFC 3263), not at load time.
    let cfg = Config::from_toml_at(
        "[forward]\ntarget = \"sip:pbx@pbx.example.test\"\n",
        &repo(),
    )
    .unwrap();
    assert!(cfg.forward.fixed.is_none());
    let errors = |toml: &str| {
        Config::from_toml_at(toml, &repo())
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors("[forward]\ntargets = [\"sip:10.0.0.5\", \"http://x\"]\n"),
        ["forward.targets"]
    );
    assert_eq!(
        errors("[forward]\ndns_servers = [\"resolver.example\"]\n"),
        ["forward.dns_servers"]
    );
    assert_eq!(
        errors("[forward]\nfailover_timeout_ms = 5\n"),
        ["forward.failover_timeout_ms"]
    );
}

#[test]
fn embedded_default_is_the_shipped_file() {
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/stirgate.toml"
    ))
    .unwrap();
    assert_eq!(DEFAULT_TOML, on_disk);
    let cfg = Config::from_toml_at(DEFAULT_TOML, &repo()).unwrap();
    assert_eq!(cfg.forward.uris, ["sip:phone@127.0.0.1:5070"]);
    assert_eq!(cfg.timers.t1, Duration::from_millis(500));
}

#[test]
fn a_file_naming_only_two_keys_is_valid() {
    let cfg = Config::from_toml_at(
        "[sip]\nlisten = [\"udp:127.0.0.1:5099\"]\n[forward]\ntarget = \"sip:pbx@127.0.0.1:5080;transport=tcp\"\n",
        &repo(),
    )
    .unwrap();
    assert_eq!(
        cfg.listen,
        vec![ListenAddr::Udp("127.0.0.1:5099".parse().unwrap())]
    );
    assert_eq!(peer(&cfg).transport, Transport::Tcp);
    assert_eq!(peer(&cfg).addr, "127.0.0.1:5080".parse().unwrap());
}

#[test]
fn tls_targets_listeners_and_their_errors() {
    let cfg =
        Config::from_toml_at("[forward]\ntarget = \"sips:pbx@127.0.0.1\"\n", &repo()).unwrap();
    assert_eq!(peer(&cfg).transport, Transport::Tls);
    assert_eq!(peer(&cfg).addr, "127.0.0.1:5061".parse().unwrap());
    assert_eq!(
        cfg.tls_names,
        vec![("127.0.0.1:5061".parse().unwrap(), "127.0.0.1".to_owned())]
    );
    assert!(
        cfg.tls.is_some(),
        "outbound TLS is ready for a sips: target"
    );
    let cfg = Config::from_toml_at(
        "[forward]\ntarget = \"sip:pbx@127.0.0.1:5071;transport=TLS\"\n",
        &repo(),
    )
    .unwrap();
    assert_eq!(peer(&cfg).transport, Transport::Tls);

    let err = |toml: &str| {
        Config::from_toml_at(toml, &repo())
            .unwrap_err()
            .0
            .iter()
            .map(|e| format!("{}: {}", e.key, e.reason))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = err("[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\n");
    assert!(e.contains("sip.tls_cert: a tls: listener"), "{e}");
    let e = err("[sip]\nlisten = [\"tls:127.0.0.1:5061\"]\ntls_cert = \"no-such.pem\"\ntls_key = \"k.pem\"\n");
    assert!(e.contains("sip.tls_cert: cannot read"), "{e}");
    let e = err("[sip]\ntls_ca = \"configs/stirgate.toml\"\n");
    assert!(
        e.contains("sip.tls_ca:"),
        "a file without certificates: {e}"
    );
    let e = err("[forward]\ntarget = \"sips:pbx@127.0.0.1;transport=udp\"\n");
    assert!(e.contains("forward.target: a sips: URI needs TLS"), "{e}");
}

#[test]
fn numbers_override_target_routes_and_greeting() {
    let cfg = Config::from_toml_at(
        "[[numbers]]\nnumber = \"+1 (555) 123-0002\"\nforward_target = \"sip:desk@127.0.0.1:5090\"\n\
         organization = \"Acme Dental\"\n[numbers.routes]\nC = \"forward\"\n\
         [[numbers]]\nnumber = \"15551230003\"\n",
        &repo(),
    )
    .unwrap();
    assert_eq!(cfg.numbers.len(), 2);
    let n = &cfg.numbers[0];
    assert_eq!(n.number, "15551230002");
    assert_eq!(n.routes.c, RouteAction::Forward);
    assert_eq!(
        n.routes.missing,
        RouteAction::Captcha,
        "the rest inherits [routes]"
    );
    assert_eq!(
        n.forward
            .as_ref()
            .and_then(|f| f.fixed.as_ref())
            .map(|d| d[0].peer.addr.port()),
        Some(5090)
    );
    assert_eq!(n.organization.as_deref(), Some("Acme Dental"));
    let err = Config::from_toml_at(
        "[[numbers]]\nnumber = \"call me\"\n[[numbers]]\nnumber = \"1\"\n[numbers.routes]\nB = \"teleport\"\n",
        &repo(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["numbers[0].number", "numbers[1].routes.B"]);
}

#[test]
fn unknown_keys_are_rejected_in_every_table() {
    for table in [
        "sip",
        "forward",
        "metrics",
        "cdr",
        "shutdown",
        "limits",
        "stir",
        "media",
        "routes",
        "captcha",
        "voicemail",
        "screen",
        "vs",
        "redirect",
        "status",
        "log",
        "lists",
    ] {
        let text = format!("[{table}]\nbogus_key = 1\n");
        let err = Config::from_toml_at(&text, &repo())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus_key"), "{table}: {err}");
    }
    let err = Config::from_toml_at("[nonsense]\na = 1\n", &repo())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn admin_listeners_and_log_keys_validate_with_their_keys() {
    let ok = Config::from_toml_at(
        "[status]\nlisten = \"0.0.0.0:9092\"\ntoken = \"0123456789abcdef\"\n\
         allow = [\"10.0.0.0/8\", \"192.0.2.7\"]\n\
         [metrics]\nallow = [\"127.0.0.1\", \"::1/128\"]\n[log]\nformat = \"json\"\n",
        &repo(),
    )
    .unwrap();
    assert!(ok.status_access.has_token());
    assert!(ok
        .status_access
        .source_allowed("192.0.2.7".parse().unwrap()));
    assert!(!ok
        .status_access
        .source_allowed("192.0.2.8".parse().unwrap()));
    assert_eq!(ok.metrics_allow.len(), 2);
    assert_eq!(ok.log_format, LogFormat::Json);
    let printed = format!("{:?}", ok.raw);
    assert!(
        !printed.contains("0123456789abcdef") && printed.contains("<set>"),
        "check-config never prints the token: {printed}"
    );

    let keys = |text: &str| -> Vec<String> {
        Config::from_toml_at(text, &repo())
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(
        keys("[status]\nlisten = \"0.0.0.0:9092\"\n"),
        vec!["status.token"],
        "no token: loopback only"
    );
    assert_eq!(
        keys("[status]\nlisten = \"127.0.0.1:9092\"\ntoken = \"short\"\n"),
        vec!["status.token"]
    );
    assert_eq!(
        keys("[status]\nallow = [\"nowhere\"]\n[metrics]\nallow = [\"10.0.0.0/33\"]\n[log]\nformat = \"xml\"\n"),
        vec!["metrics.allow", "status.allow", "log.format"]
    );
    // Loopback without a token is the default, IPv6 loopback too.
    assert!(Config::from_toml_at("[status]\nlisten = \"[::1]:9092\"\n", &repo()).is_ok());
}

#[test]
fn every_error_is_reported_with_its_key() {
    let err = Config::from_toml_at(
        "[sip]\nlisten = [\"sctp:1.2.3.4:5\"]\nt1_ms = 0\nrealtime_priority = 91\n[forward]\ntarget = \"mailto:x\"\n[metrics]\nlisten = \"nowhere\"\n[routes]\nB = \"block\"\nC = \"teleport\"\n",
        &repo(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "sip.listen",
            "sip.t1_ms",
            "sip.realtime_priority",
            "forward.target",
            "metrics.listen",
            "routes.B",
            "routes.C"
        ]
    );
    assert!(err
        .to_string()
        .contains("forward.target: `mailto:x` is not a SIP URI"));
}

#[test]
fn limits_default_and_validate_with_their_keys() {
    let cfg = Config::from_toml_at(DEFAULT_TOML, &repo()).unwrap();
    assert!(
        cfg.admission.allow_sources.is_empty(),
        "the default allows every source"
    );
    assert_eq!(cfg.admission.invite.per_second, 100);
    assert_eq!(cfg.admission.invite.burst, 200);
    assert_eq!(cfg.admission.request.per_second, 20);
    assert_eq!(cfg.admission.request.burst, 50);
    assert_eq!(cfg.admission.max_transactions_per_source, 2000);
    assert_eq!(cfg.admission.retry_after_s, 5);
    assert_eq!(cfg.admission.deny_action, DenyAction::Drop);
    assert_eq!(cfg.max_calls, 10_000);
    assert_eq!(cfg.admission.transaction_lifetime, cfg.timers.timeout);

    let cfg = Config::from_toml_at(
        "[limits]\nallow_sources = [\"54.172.60.0/30\", \"2001:db8::1\", \"10.1.2.3/8\"]\n\
         deny_action = \"403\"\nexempt_sources = [\"127.0.0.0/8\"]\nmax_calls = 0\n",
        &repo(),
    )
    .unwrap();
    let allowed: Vec<String> = cfg
        .admission
        .allow_sources
        .iter()
        .map(ToString::to_string)
        .collect();
    // Host bits are cleared, and the forward target (127.0.0.1) is allowed implicitly.
    assert_eq!(
        allowed,
        vec![
            "54.172.60.0/30",
            "2001:db8::1/128",
            "10.0.0.0/8",
            "127.0.0.1/32"
        ]
    );
    assert_eq!(cfg.admission.deny_action, DenyAction::Forbidden);
    assert_eq!(cfg.max_calls, 0);

    let err = Config::from_toml_at(
        "[limits]\nallow_sources = [\"54.172.60.0/33\", \"twilio\"]\ndeny_action = \"reject\"\n\
         exempt_sources = [\"10.0.0.0/8\", \"localhost\"]\ninvite_burst_per_source = 0\n\
         request_rate_per_source = 2000000\nretry_after_s = 0\n",
        &repo(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "limits.allow_sources",
            "limits.allow_sources",
            "limits.exempt_sources",
            "limits.deny_action",
            "limits.invite_burst_per_source",
            "limits.request_rate_per_source",
            "limits.retry_after_s",
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("limits.allow_sources: `54.172.60.0/33` is not a CIDR"),
        "{text}"
    );
    assert!(
        text.contains("limits.deny_action: unknown action `reject`"),
        "{text}"
    );
}

/// Every key the loader accepts is written (or shown commented out) in the documented
/// example, in its own table. The known keys come from serde's own "expected one of" list.
#[test]
fn the_example_documents_every_key() {
    fn known_keys(probe: &str) -> Vec<String> {
        let err = match toml::from_str::<RawConfig>(probe) {
            Ok(_) => panic!("the probe key was accepted: {probe}"),
            Err(e) => e.message().to_owned(),
        };
        let expected = err
            .split_once("expected")
            .unwrap_or_else(|| panic!("{probe}: {err}"))
            .1;
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }
    // The example's keys per section, written or commented out (`# key = ...`).
    let mut sections: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = String::new();
    sections.insert(current.clone(), Vec::new());
    for line in DEFAULT_TOML.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            if !name.contains(' ') && !name.is_empty() {
                current = name.trim_matches(['[', ']']).to_owned();
                sections.entry(current.clone()).or_default();
                continue;
            }
        }
        if let Some((key, _)) = line.split_once(" = ") {
            if !key.contains(' ') {
                sections
                    .entry(current.clone())
                    .or_default()
                    .push(key.to_owned());
            }
        }
    }
    let tables = known_keys("__probe__ = 1\n");
    let mut missing = Vec::new();
    for table in &tables {
        let probe = match table.as_str() {
            "numbers" => "[[numbers]]\nnumber = \"1\"\n__probe__ = 1\n".to_owned(),
            other => format!("[{other}]\n__probe__ = 1\n"),
        };
        let Some(documented) = sections.get(table.as_str()) else {
            missing.push(format!("[{table}]"));
            continue;
        };
        for key in known_keys(&probe) {
            let nested = format!("{table}.{key}");
            if !documented.contains(&key) && !sections.contains_key(&nested) {
                missing.push(nested);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "configs/stirgate.toml does not document: {missing:?}"
    );
}

/// Every key the loader accepts, dotted as docs/interface.md writes it (`sip.listen`,
/// `voicemail.sms.to`, `numbers[].routes.A`), found by serde's own "expected one of" lists.
fn loader_keys() -> Vec<String> {
    fn known(probe: &str) -> Vec<String> {
        let err = match toml::from_str::<RawConfig>(probe) {
            Ok(_) => panic!("the probe key was accepted: {probe}"),
            Err(e) => e.message().to_owned(),
        };
        let expected = err
            .split_once("expected")
            .unwrap_or_else(|| panic!("{probe}: {err}"))
            .1;
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }
    // (TOML header that opens the table, dotted name used in the docs)
    let mut todo: Vec<(String, String)> = known("__probe__ = 1\n")
        .into_iter()
        .map(|t| match t.as_str() {
            "numbers" => (
                "[[numbers]]\nnumber = \"1\"\n".to_owned(),
                "numbers[]".to_owned(),
            ),
            other => (format!("[{other}]\n"), other.to_owned()),
        })
        .collect();
    let mut keys = Vec::new();
    while let Some((header, dotted)) = todo.pop() {
        for key in known(&format!("{header}__probe__ = 1\n")) {
            let name = format!("{dotted}.{key}");
            // A nested table answers the probe with its own key list.
            let nested_header = format!("{header}[{}.{key}]\n", dotted.trim_end_matches("[]"));
            let is_table = toml::from_str::<RawConfig>(&format!("{nested_header}__probe__ = 1\n"))
                .err()
                .is_some_and(|e| e.message().contains("unknown field `__probe__`"));
            if is_table && !matches!(key.as_str(), "number") {
                todo.push((nested_header, name));
            } else {
                keys.push(name);
            }
        }
    }
    keys.sort();
    keys
}

/// docs/interface.md (the project's copy of the interface contract) names every key the loader
/// accepts, so the contract cannot fall behind the code.
#[test]
fn the_interface_names_every_key() {
    let interface = std::fs::read_to_string(repo().join("docs/interface.md")).unwrap();
    let keys = loader_keys();
    assert!(keys.len() > 80, "the probe found too few keys: {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !interface.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/interface.md does not name: {missing:?}"
    );
}

/// The Debian package's /etc/stirgate/stirgate.toml is valid, and every state path in it is
/// absolute, inside the folders its systemd unit makes writable.
#[test]
fn the_packaged_service_config_is_valid_and_keeps_state_in_the_service_folders() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/debian/stirgate.toml"))
            .unwrap();
    let cfg = Config::from_toml_at(&text, Path::new("/etc/stirgate")).unwrap();
    let writable = [
        "/var/lib/stirgate/",
        "/var/log/stirgate/",
        "/var/cache/stirgate/",
    ];
    let state = [
        cfg.cdr_path.clone().unwrap(),
        cfg.raw.lists.path.clone(),
        cfg.voicemail.dir.clone(),
        cfg.stir.cache_file.clone().unwrap(),
        PathBuf::from(&cfg.media.tts_cache_dir),
    ];
    for path in state {
        assert!(
            writable.iter().any(|w| path.starts_with(w)),
            "{} is outside the unit's writable folders",
            path.display()
        );
    }
    assert_eq!(
        cfg.cdr_path.as_deref(),
        Some(Path::new("/var/log/stirgate/cdr.jsonl"))
    );
    // The unit lets the service use the SCHED_RR priority its config suggests.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/debian/stirgate.service"
    ))
    .unwrap();
    assert!(text.contains("#   realtime_priority = 10\n"));
    assert!(
        unit.contains("LimitRTPRIO=10\n"),
        "LimitRTPRIO must allow it"
    );
    assert!(!unit.contains("RestrictRealtime=yes"));
    assert!(cfg.realtime_priority <= 10);
}

#[test]
fn the_verification_service_takes_the_listener_access_rules() {
    let cfg = Config::from_toml_at("", &repo()).unwrap();
    assert!(cfg.vs.is_none(), "off by default");
    let cfg = Config::from_toml_at("[vs]\nlisten = \"127.0.0.1:9300\"\n", &repo()).unwrap();
    let vs = cfg.vs.expect("on");
    assert_eq!(vs.listen, "127.0.0.1:9300".parse().unwrap());
    assert!(!vs.access.has_token());
    assert!(vs.signer.is_none());
    let err = Config::from_toml_at(
        "[vs]\nlisten = \"0.0.0.0:9300\"\nallow = [\"10.0.0.0/33\"]\nmax_connections = 0\n\
         signing_key = \"no-such.pem\"\n",
        &repo(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "vs.allow",
            "vs.token",
            "vs.max_connections",
            "vs.signing_key",
            "vs.signing_x5u"
        ],
        "{err}"
    );
    let cfg = Config::from_toml_at(
        "[vs]\nlisten = \"0.0.0.0:9300\"\ntoken = \"0123456789abcdef0123\"\n",
        &repo(),
    )
    .unwrap();
    assert!(cfg.vs.expect("on").access.has_token());
    let shown = format!("{:?}", cfg.raw);
    assert!(
        !shown.contains("0123456789abcdef0123"),
        "the token is never printed"
    );
}

#[test]
fn redirect_listeners_are_their_own() {
    let cfg = Config::from_toml_at("", &repo()).unwrap();
    assert!(cfg.redirect_listen.is_empty(), "off by default");
    let cfg = Config::from_toml_at(
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n[redirect]\nlisten = [\"udp:127.0.0.1:5065\", \"tcp:127.0.0.1:5065\"]\n",
        &repo(),
    )
    .unwrap();
    assert_eq!(cfg.redirect_listen.len(), 2);
    let err = Config::from_toml_at(
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n[redirect]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\", \"udp:nowhere\"]\n",
        &repo(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, vec!["redirect.listen"; 3], "{err}");
}
