//! The path rule: a relative path in a config file names a file beside that config file, so a
//! service started from any working directory finds (and writes) the same files.

use std::path::{Path, PathBuf};

use super::RawConfig;

/// Rewrites every relative path of `raw` (state files, recordings, CDRs, lists, trust anchors,
/// TLS files, prompts, caches) as `base` joined with it. Empty values (off, or "use the
/// default") and the `builtin:` names of embedded assets stay as they are.
pub(super) fn resolve_relative(raw: &mut RawConfig, base: &Path) {
    let rebase = |p: &Path| -> PathBuf {
        let builtin = p.to_str().is_some_and(|s| s.starts_with("builtin:"));
        if p.is_relative() && !p.as_os_str().is_empty() && !builtin {
            base.join(p)
        } else {
            p.to_owned()
        }
    };
    let rebase_text = |p: &mut String| {
        if !p.is_empty() {
            *p = rebase(Path::new(p.as_str())).display().to_string();
        }
    };
    rebase_text(&mut raw.sip.tls_cert);
    rebase_text(&mut raw.sip.tls_key);
    rebase_text(&mut raw.sip.tls_ca);
    rebase_text(&mut raw.media.prompt_dir);
    rebase_text(&mut raw.media.tts_cache_dir);
    rebase_text(&mut raw.cdr.path);
    rebase_text(&mut raw.vs.signing_key);
    raw.stir.trust_anchors = rebase(&raw.stir.trust_anchors);
    raw.stir.intermediates = raw.stir.intermediates.as_deref().map(rebase);
    raw.stir.cache_file = raw.stir.cache_file.as_deref().map(rebase);
    raw.voicemail.dir = rebase(&raw.voicemail.dir);
    raw.lists.path = rebase(&raw.lists.path);
}
