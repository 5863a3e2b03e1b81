//! `stirgate verify` and `stirgate sign`: the commands of docs/interface.md over the `stir` crate. `verify`
//! runs [`stir::Verifier::verify`], the code path the B2BUA uses.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use stir::cert::TrustAnchors;
use stir::sign::{RichData, ShakenClaims, SigningKey};
use stir::{Attest, Verdict, Verifier, VerifyRequest};

use crate::cli::{SignArgs, VerifyArgs};

/// Runs `stirgate verify`; returns the process exit status of docs/interface.md: 0 when verstat is
/// TN-Validation-Passed, 1 otherwise, 2 on a usage error.
pub fn verify(args: VerifyArgs) -> u8 {
    let cfg = stir::Config {
        allow_http_x5u: args.allow_http_x5u,
        ..stir::Config::default()
    };
    let paths: Vec<PathBuf> = if args.trust_anchors.is_empty() {
        vec![cfg.trust_anchors.clone()]
    } else {
        args.trust_anchors.clone()
    };
    let anchors = match TrustAnchors::load_all(&paths) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stirgate verify: --trust-anchors: {e}");
            return 2;
        }
    };
    let verifier = match Verifier::with_anchors(&cfg, anchors) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("stirgate verify: {e}");
            return 2;
        }
    };
    let now = args
        .now
        .map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    let req = VerifyRequest::new(args.identity, args.from, args.to, now);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stirgate verify: cannot start the runtime: {e}");
            return 2;
        }
    };
    let verdict = runtime.block_on(verifier.verify(&req));
    if args.json {
        match serde_json::to_string(&verdict) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("stirgate verify: {e}");
                return 2;
            }
        }
    } else {
        print!("{}", human(&verdict));
    }
    u8::from(!verdict.passed())
}

/// Runs `stirgate sign`; prints the full-form Identity header value (`--count N`: N values,
/// one per line, each with a fresh origid). Returns 0, or 2 on bad input.
pub fn sign(args: SignArgs) -> u8 {
    match sign_values(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stirgate sign: {e}");
            2
        }
    }
}

fn sign_values(args: SignArgs) -> Result<(), String> {
    use std::io::Write;

    let pem = std::fs::read(&args.key).map_err(|e| format!("--key {}: {e}", args.key.display()))?;
    let key =
        SigningKey::from_pem(&pem).map_err(|e| format!("--key {}: {e}", args.key.display()))?;
    let attest = Attest::parse(&args.attest)
        .ok_or_else(|| format!("--attest {:?}: must be A, B or C", args.attest))?;
    if !(args.x5u.starts_with("https://") || args.x5u.starts_with("http://")) {
        return Err(format!("--x5u {:?}: must be an http(s) URL", args.x5u));
    }
    let iat = match args.iat {
        Some(iat) => i64::try_from(iat).map_err(|_| format!("--iat {iat}: out of range"))?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    let rich = rich_data(&args)?;
    let mut claims = ShakenClaims {
        x5u: args.x5u,
        attest,
        orig: args.orig,
        dest: args.dest,
        origid: String::new(),
        iat,
    };
    // Buffered: a load generator asks for hundreds of thousands of lines.
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let count = args.count.unwrap_or(1);
    let mut given = args.origid;
    for _ in 0..count {
        claims.origid = given.take().unwrap_or_else(uuid_v4);
        let value = stir::sign::sign_with_rcd(&key, &claims, &rich).map_err(|e| e.to_string())?;
        writeln!(out, "{value}").map_err(|e| format!("stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}

/// The `--rcd-*` and `--crn` flags as PASSporT claims.
fn rich_data(args: &SignArgs) -> Result<RichData, String> {
    use base64::Engine as _;

    let mut rcd = serde_json::Map::new();
    for (key, value) in [
        ("nam", &args.rcd_nam),
        ("apn", &args.rcd_apn),
        ("icn", &args.rcd_icn),
    ] {
        if let Some(v) = value {
            rcd.insert(key.to_owned(), serde_json::Value::String(v.clone()));
        }
    }
    let rcdi = match &args.rcd_icn_file {
        Some(path) => {
            let content = std::fs::read(path)
                .map_err(|e| format!("--rcd-icn-file {}: {e}", path.display()))?;
            let digest = stir::rcd::DigestAlg::Sha256.digest(&content);
            let value = format!(
                "sha256-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            );
            Some(serde_json::json!({ "/icn": value }))
        }
        None => None,
    };
    Ok(RichData {
        rcd: (!rcd.is_empty()).then_some(serde_json::Value::Object(rcd)),
        rcdi,
        crn: args.crn.clone(),
    })
}

fn human(v: &Verdict) -> String {
    let opt = |o: Option<&str>| o.unwrap_or("-").to_owned();
    let mut out = String::new();
    out.push_str(&format!("verstat:  {}\n", v.verstat));
    out.push_str(&format!(
        "attest:   {}\n",
        opt(v.attest.map(Attest::as_str))
    ));
    out.push_str(&format!("reason:   {}\n", v.reason));
    out.push_str(&format!(
        "sip_code: {}\n",
        v.sip_code()
            .map_or_else(|| "-".to_owned(), |c| c.to_string())
    ));
    out.push_str(&format!("x5u:      {}\n", opt(v.x5u.as_deref())));
    out.push_str(&format!("spc:      {}\n", opt(v.spc.as_deref())));
    out.push_str(&format!("origid:   {}\n", opt(v.origid.as_deref())));
    out.push_str(&format!("orig:     {}\n", opt(v.orig.as_deref())));
    out.push_str(&format!(
        "dest:     {}\n",
        if v.dest.is_empty() {
            "-".to_owned()
        } else {
            v.dest.join(", ")
        }
    ));
    if v.replayed {
        out.push_str("replayed: yes\n");
    }
    for d in &v.diversions {
        out.push_str(&format!(
            "div:      {} -> {} ({})\n",
            opt(d.from.as_deref()),
            d.to.join(", "),
            d.reason
        ));
    }
    match &v.rcd {
        Some(rcd) => out.push_str(&format!(
            "rcd:      {}\n",
            serde_json::to_string(rcd).unwrap_or_default()
        )),
        None => out.push_str("rcd:      -\n"),
    }
    out.push_str(&format!(
        "elapsed:  {:.1} ms\n",
        v.elapsed.as_secs_f64() * 1000.0
    ));
    out
}

/// A random (version 4) UUID for `origid`.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
