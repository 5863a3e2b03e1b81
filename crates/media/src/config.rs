//! The `[media]` configuration section.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// The `[media]` section of `stirgate.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The IP address put in stirgate's SDP (`c=`); RTP sockets bind to it unless `bind` is set.
    pub address: String,
    /// The address RTP sockets bind to (e.g. `0.0.0.0` behind 1:1 NAT); empty means `address`.
    pub bind: String,
    /// UDP port range for RTP, `"LOW-HIGH"`; each call takes an even port and the next (RTCP).
    pub rtp_ports: String,
    /// Folder of prompt WAV files overriding the embedded prompts file by file (`greeting.wav`
    /// replaces the embedded greeting); empty means the embedded prompts only.
    pub prompt_dir: String,
    /// Text-to-speech command for text that only exists in the config; `{out}` and `{text}` are
    /// replaced. Empty disables text-to-speech (the generic prompts play).
    pub tts_command: String,
    /// Where rendered text-to-speech prompts are cached; empty means the system temp dir.
    pub tts_cache_dir: String,
    /// Detect in-band DTMF tones for callers that offer no telephone-event.
    pub inband_dtmf: bool,
    /// Seconds without RTP before a call is reported dead (0 disables).
    pub rtp_timeout_s: u64,
    /// Dedicated media threads running the RTP sessions; 0 means one per CPU.
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: "127.0.0.1".to_owned(),
            bind: String::new(),
            rtp_ports: "20000-29999".to_owned(),
            prompt_dir: String::new(),
            tts_command: "espeak-ng -v en-us -s 150 -w {out} {text}".to_owned(),
            tts_cache_dir: String::new(),
            inband_dtmf: true,
            rtp_timeout_s: 30,
            threads: 0,
        }
    }
}

/// One invalid key, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The full key, e.g. `media.rtp_ports`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Config {
    /// Checks every key and returns all errors at once.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |key: &str, reason: String| {
            errors.push(ConfigError {
                key: format!("media.{key}"),
                reason,
            });
        };
        if let Err(reason) = self.address.parse::<IpAddr>() {
            err(
                "address",
                format!("{:?} is not an IP address ({reason})", self.address),
            );
        } else if self
            .address
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_unspecified())
        {
            err(
                "address",
                "must be an address peers can reach, not 0.0.0.0 or ::".to_owned(),
            );
        }
        if !self.bind.is_empty() {
            if let Err(reason) = self.bind.parse::<IpAddr>() {
                err(
                    "bind",
                    format!("{:?} is not an IP address ({reason})", self.bind),
                );
            }
        }
        if let Err(reason) = self.port_range() {
            err("rtp_ports", reason);
        }
        if !self.prompt_dir.is_empty() && !std::path::Path::new(&self.prompt_dir).is_dir() {
            err(
                "prompt_dir",
                format!(
                    "`{}` is not a folder (\"\" plays the embedded prompts)",
                    self.prompt_dir
                ),
            );
        }
        if self.threads > 256 {
            err(
                "threads",
                format!(
                    "{} is too many; use 0 (one per CPU) up to 256",
                    self.threads
                ),
            );
        }
        if !self.tts_command.trim().is_empty()
            && !self.tts_command.split_whitespace().any(|a| a == "{out}")
        {
            err(
                "tts_command",
                "must contain an {out} argument (the WAV file to write)".to_owned(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The RTP port range, even-aligned: `Err` carries the reason.
    pub fn port_range(&self) -> Result<RangeInclusive<u16>, String> {
        let (lo, hi) = self
            .rtp_ports
            .split_once('-')
            .ok_or_else(|| format!("{:?} is not LOW-HIGH", self.rtp_ports))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|e| format!("low port {lo:?}: {e}"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|e| format!("high port {hi:?}: {e}"))?;
        if lo < 1024 {
            return Err(format!("low port {lo} is privileged; use 1024 or above"));
        }
        if hi <= lo {
            return Err(format!("high port {hi} must be above low port {lo}"));
        }
        let lo = lo + lo % 2; // RTP on even ports (RFC 3550 §11)
        if hi < lo + 1 {
            return Err("the range holds no even/odd port pair".to_owned());
        }
        Ok(lo..=hi)
    }

    /// The address to bind RTP sockets to.
    #[must_use]
    pub fn bind_address(&self) -> Option<IpAddr> {
        let text = if self.bind.is_empty() {
            &self.address
        } else {
            &self.bind
        };
        text.parse().ok()
    }

    /// The number of media threads to run.
    #[must_use]
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }
    }

    /// The text-to-speech cache directory.
    #[must_use]
    pub fn tts_cache(&self) -> PathBuf {
        if self.tts_cache_dir.is_empty() {
            std::env::temp_dir().join("stirgate-tts")
        } else {
            PathBuf::from(&self.tts_cache_dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[media]` section documented for `configs/stirgate.toml`, all keys at their defaults.
    const EXAMPLE: &str = r#"
[media]
# IP address put in stirgate's SDP (c= line); peers send RTP here.
address = "127.0.0.1"
# Address the RTP sockets bind to; "" means the same as `address` (use "0.0.0.0" behind 1:1 NAT).
bind = ""
# UDP port range for RTP; each call takes an even port (RTP) and the next odd one (RTCP).
rtp_ports = "20000-29999"
# The prompts are built into stirgate. A folder named here overrides them file by file: a
# greeting.wav there replaces the built-in greeting, the others stay built in (names as in
# crates/media/prompts; 8 kHz mono 16-bit, other formats are converted at start-up). A relative
# folder is taken relative to this file's folder. "" plays the built-in prompts only.
prompt_dir = ""
# Text-to-speech command for text that only exists in the config (e.g. a greeting naming the
# organisation); {out} is the WAV file to write, {text} the text. "" disables it (generic prompts).
tts_command = "espeak-ng -v en-us -s 150 -w {out} {text}"
# Cache of rendered text-to-speech prompts; "" means $TMPDIR/stirgate-tts.
tts_cache_dir = ""
# Detect in-band DTMF tones for callers that offer no telephone-event.
inband_dtmf = true
# Seconds without RTP before a call is reported dead; 0 disables.
rtp_timeout_s = 30
# Dedicated media threads running the RTP sessions; 0 means one per CPU.
threads = 0
"#;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        media: Config,
    }

    #[test]
    fn documented_section_parses_to_the_defaults_and_unknown_keys_fail() {
        let file: File = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(file.media, Config::default());
        let partial: File = toml::from_str("[media]\naddress = \"192.0.2.1\"\n").unwrap();
        assert_eq!(partial.media.rtp_ports, "20000-29999");
        let err = toml::from_str::<File>("[media]\nrtp_port = \"1-2\"\n")
            .err()
            .expect("typo rejected");
        assert!(err.to_string().contains("rtp_port"), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.port_range(), Ok(20000..=29999));
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let c = Config {
            address: "nope".to_owned(),
            bind: "x".to_owned(),
            rtp_ports: "30000-20000".to_owned(),
            prompt_dir: "/nonexistent/prompts".to_owned(),
            threads: 1000,
            tts_command: "say {text}".to_owned(),
            ..Config::default()
        };
        let keys: Vec<String> = c
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "media.address",
                "media.bind",
                "media.rtp_ports",
                "media.prompt_dir",
                "media.threads",
                "media.tts_command"
            ]
        );
        for bad in ["20000", "80-90", "a-b", "20001-20001"] {
            let c = Config {
                rtp_ports: bad.to_owned(),
                ..Config::default()
            };
            assert!(c.port_range().is_err(), "{bad}");
        }
        assert_eq!(
            Config {
                rtp_ports: "20001-20003".to_owned(),
                ..Config::default()
            }
            .port_range(),
            Ok(20002..=20003)
        );
    }
}
