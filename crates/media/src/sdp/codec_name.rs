//! The codec name of an SDP answer for a call record, read by a line scan.
//!
//! Only the record's codec name depends on this: the SDP stirgate negotiates media from is still
//! parsed in full by the `sdp` crate ([`super::answer`], [`super::parse_answer`]). A full parse
//! costs about as much as the rest of forwarding a call's 200, for one word of a record; the scan
//! reads the same lines the parser would (`v=` first, the first `m=audio` with a non-zero port,
//! that section's `a=rtpmap` lines) and gives the same name for valid SDP. It never panics and
//! gives `None` for text that is not SDP.

/// The codec of an SDP answer as a person reads it (`PCMU`, `PCMA`, `G722`, `opus`, ...): the
/// encoding name of the first format of the first active audio stream, from its `a=rtpmap` or,
/// for a static payload type, from RFC 3551. For call records of calls whose media stirgate only
/// relays (any codec the two ends agreed on), hence not limited to [`super::Codec`]. `None` when
/// the text is no SDP or has no active audio stream.
#[must_use]
pub fn answer_codec(answer: &str) -> Option<String> {
    // Lines end in CRLF or LF; the value of a line is trimmed, as the `sdp` crate does.
    let mut lines = answer.trim_start().split('\n').map(str::trim);
    if lines.next()?.strip_prefix("v=")?.trim() != "0" {
        return None;
    }
    let pt = lines
        .by_ref()
        .find_map(|line| first_audio_format(line.strip_prefix("m=")?))?;
    // The section's attributes run to the next media description.
    let name = lines
        .take_while(|line| !line.starts_with("m="))
        .filter_map(|line| rtpmap(line.strip_prefix("a=")?.trim()))
        .find_map(|(p, name)| (p == pt).then_some(name));
    if let Some(name) = name {
        return Some(name.to_owned());
    }
    static_audio_name(pt).map(str::to_owned)
}

/// RFC 3551 §6: the name of a static audio payload type still met in the field.
fn static_audio_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        8 => "PCMA",
        9 => "G722",
        18 => "G729",
        _ => return None,
    })
}

/// The first format of an active audio `m=` line (`audio <port>[/<n>] <proto> <fmt> ...`, the
/// port not 0), as a payload type; `None` for other media, port 0 or a malformed line.
fn first_audio_format(media: &str) -> Option<u8> {
    let mut fields = media.split_whitespace();
    if fields.next()? != "audio" {
        return None;
    }
    let port: u16 = fields.next()?.split('/').next()?.parse().ok()?;
    let _proto = fields.next()?;
    let fmt = fields.next()?;
    (port != 0).then_some(())?;
    fmt.parse().ok()
}

/// An `rtpmap` attribute (`rtpmap:<pt> <name>/<rate>[/<params>]`, the name case-insensitive):
/// its payload type and encoding name; `None` for other attributes or one malformed.
fn rtpmap(attribute: &str) -> Option<(u8, &str)> {
    let (key, value) = attribute.split_once(':')?;
    if !key.eq_ignore_ascii_case("rtpmap") {
        return None;
    }
    let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?;
    let _rate: u32 = parts.next()?.parse().ok()?;
    Some((pt.parse().ok()?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

    /// What the full parse by the `sdp` crate gives, as `answer_codec` did before the scan.
    fn parsed(answer: &str) -> Option<String> {
        let session = super::super::parse(answer).ok()?;
        let md = session.media_descriptions.iter().find(|md| {
            md.media_name.media.eq_ignore_ascii_case("audio") && md.media_name.port.value != 0
        })?;
        let pt: u8 = md.media_name.formats.first()?.parse().ok()?;
        if let Some((_, name, _)) = super::super::rtpmaps(md)
            .into_iter()
            .find(|(p, _, _)| *p == pt)
        {
            return Some(name);
        }
        static_audio_name(pt).map(str::to_owned)
    }

    fn check(media: &str, want: Option<&str>) {
        let crlf = format!("{HEAD}{media}");
        let lf = crlf.replace("\r\n", "\n");
        for sdp in [&crlf, &lf] {
            assert_eq!(answer_codec(sdp).as_deref(), want, "{sdp:?}");
            assert_eq!(parsed(sdp).as_deref(), want, "the sdp crate on {sdp:?}");
        }
    }

    #[test]
    fn names_the_first_format_from_its_rtpmap() {
        check(
            "m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            Some("PCMA"),
        );
        check(
            "m=audio 4000 RTP/AVP 111 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:111 opus/48000/2\r\n",
            Some("opus"),
        );
        check(
            "m=audio 4000 RTP/AVP 96\r\na=RTPMAP:96 speex/16000\r\na=rtpmap:96 other/8000\r\n",
            Some("speex"),
        );
        check(
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 pcmu/8000\r\n",
            Some("pcmu"),
        );
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        check("m=audio 4000 RTP/AVP 0 8\r\n", Some("PCMU"));
        check("m=audio 4000 RTP/AVP 18\r\na=ptime:20\r\n", Some("G729"));
        check("m=audio 4000/2 RTP/AVP 9\r\n", Some("G722"));
        // A dynamic type without its rtpmap has no name.
        check("m=audio 4000 RTP/AVP 97\r\na=rtpmap:98 x/8000\r\n", None);
    }

    #[test]
    fn reads_the_first_active_audio_stream_only() {
        check(
            "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n",
            Some("opus"),
        );
        check(
            "m=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 8\r\n",
            Some("PCMA"),
        );
        // The first stream's rtpmap does not name the second stream's format.
        check(
            "m=audio 4000 RTP/AVP 97\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:97 x/8000\r\n",
            None,
        );
        check("m=audio 0 RTP/AVP 0\r\n", None);
        check(
            "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
            None,
        );
    }

    #[test]
    fn an_rtpmap_without_a_clock_rate_is_skipped() {
        check("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n", None);
        check("m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 X/y\r\n", Some("PCMA"));
    }

    #[test]
    fn garbage_is_none() {
        for text in [
            "",
            "not sdp",
            "\r\n\r\n",
            "m=audio 4000 RTP/AVP 0\r\n",
            "v=1\r\nm=audio 4000 RTP/AVP 0\r\n",
            "v=0\r\n",
            "v=0\r\nm=audio\r\n",
            "v=0\r\nm=audio 4000 RTP/AVP\r\n",
            "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\nm=audio 4000 RTP/AVP 300\r\na=rtpmap:300 x/8000\r\n",
            "v=0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96\r\na=rtpmap\r\na=:\r\n",
            "v=0\r\nm=audio 4000 RTP/AVP é\r\na=rtpmap:é é/8000\r\n",
        ] {
            assert_eq!(answer_codec(text), None, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = answer_codec(&text);
            let _ = answer_codec(&format!("v=0\r\n{text}"));
        }

        #[test]
        fn agrees_with_the_sdp_crate(
            video_first in proptest::bool::ANY,
            port in proptest::sample::select(vec!["0", "4000", "4000/2"]),
            formats in proptest::collection::vec(
                proptest::sample::select(vec!["0", "8", "9", "18", "96", "101", "127"]), 1..4),
            maps in proptest::collection::vec((
                proptest::sample::select(vec!["rtpmap", "RtpMap", "fmtp", "ptime"]),
                proptest::sample::select(vec!["0", "8", "96", "101", "x"]),
                proptest::sample::select(vec!["PCMU/8000", "opus/48000/2", "telephone-event/8000", "G722", "a/b"]),
            ), 0..4),
            crlf in proptest::bool::ANY,
        ) {
            let mut sdp = HEAD.to_owned();
            if video_first {
                sdp.push_str("m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
            }
            sdp.push_str(&format!("m=audio {port} RTP/AVP {}\r\n", formats.join(" ")));
            for (key, pt, map) in &maps {
                sdp.push_str(&format!("a={key}:{pt} {map}\r\n"));
            }
            sdp.push_str("m=audio 4002 RTP/AVP 0\r\n");
            if !crlf {
                sdp = sdp.replace("\r\n", "\n");
            }
            proptest::prop_assert_eq!(answer_codec(&sdp), parsed(&sdp), "{:?}", sdp);
        }
    }
}
