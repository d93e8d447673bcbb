//! Encoders, parsers and containers per codec, configured from a ladder. Keyframe alignment
//! across rungs comes from identical input frames plus a fixed keyframe interval with scene-cut
//! detection off: every encoder places an IDR on the same frame numbers.

use anyhow::Result;
use gst::prelude::*;

use super::{make, set_number};
use crate::presets::ladder::{Audio, AudioCodec, Ladder, Rung, Speed, VideoCodec};

/// The video encoder for one rung.
pub fn video_encoder(ladder: &Ladder, rung: &Rung, name: &str) -> Result<gst::Element> {
    let v = &ladder.video;
    let gop = ladder.gop_frames();
    let kbps = rung.bitrate_kbps;
    let e = match v.codec {
        VideoCodec::H264 => {
            let e = make("x264enc", Some(name))?;
            set_number(&e, "bitrate", i64::from(kbps))?;
            e.set_property_from_str("speed-preset", v.speed.as_str());
            if v.zerolatency {
                e.set_property_from_str("tune", "zerolatency");
            }
            set_number(&e, "bframes", i64::from(v.bframes))?;
            set_number(&e, "key-int-max", i64::from(gop))?;
            // No scene-cut keyframes: they would land on different frames in different rungs.
            e.set_property("option-string", format!("scenecut=0:min-keyint={gop}"));
            e
        }
        VideoCodec::H265 => {
            let e = make("x265enc", Some(name))?;
            set_number(&e, "bitrate", i64::from(kbps))?;
            e.set_property_from_str("speed-preset", v.speed.as_str());
            if v.zerolatency {
                e.set_property_from_str("tune", "zerolatency");
            }
            set_number(&e, "key-int-max", i64::from(gop))?;
            e.set_property(
                "option-string",
                format!("scenecut=0:min-keyint={gop}:bframes={}", v.bframes),
            );
            e
        }
        VideoCodec::Av1 => {
            let e = make("rav1enc", Some(name))?;
            set_number(&e, "bitrate", i64::from(kbps) * 1000)?;
            // With a bitrate target `quantizer` is rav1e's ceiling on the quantizer; the
            // element's default of 100 floors the bitrate far above low rungs' targets (a
            // 300 kbit/s 360p rung came out at 1.2 Mbit/s). 255 lets rate control use the whole
            // range, as ffmpeg's librav1e does.
            set_number(&e, "quantizer", 255)?;
            // rav1e speed: 10 fastest .. 0 slowest; x264's veryfast maps to 9.
            set_number(
                &e,
                "speed-preset",
                i64::from(10u32.saturating_sub(v.speed.index()).max(1)),
            )?;
            e.set_property("low-latency", v.zerolatency);
            set_number(&e, "max-key-frame-interval", i64::from(gop))?;
            set_number(&e, "min-key-frame-interval", i64::from(gop))?;
            e
        }
        VideoCodec::Vp8 | VideoCodec::Vp9 => {
            let e = make(
                if v.codec == VideoCodec::Vp8 {
                    "vp8enc"
                } else {
                    "vp9enc"
                },
                Some(name),
            )?;
            set_number(&e, "target-bitrate", i64::from(kbps) * 1000)?;
            e.set_property_from_str("end-usage", "cbr");
            set_number(&e, "deadline", 1)?;
            set_number(&e, "cpu-used", vpx_cpu_used(v.speed))?;
            set_number(&e, "keyframe-max-dist", i64::from(gop))?;
            set_number(&e, "lag-in-frames", 0)?;
            set_number(&e, "threads", 2)?;
            e
        }
    };
    Ok(e)
}

fn vpx_cpu_used(speed: Speed) -> i64 {
    // libvpx realtime: 8 fastest .. 0 slowest.
    8 - i64::from(speed.index())
}

/// The parser after the encoder, if the codec has one; it fixes up stream-format and marks
/// keyframes for muxers.
pub fn video_parser(codec: VideoCodec, name: &str) -> Result<Option<gst::Element>> {
    Ok(match codec {
        VideoCodec::H264 => Some(make("h264parse", Some(name))?),
        VideoCodec::H265 => Some(make("h265parse", Some(name))?),
        VideoCodec::Av1 => Some(make("av1parse", Some(name))?),
        VideoCodec::Vp8 | VideoCodec::Vp9 => None,
    })
}

/// The audio encoder and its parser.
pub fn audio_encoder(audio: &Audio) -> Result<(gst::Element, Option<gst::Element>)> {
    let bps = i64::from(audio.bitrate_kbps) * 1000;
    Ok(match audio.codec {
        AudioCodec::Aac => {
            let e = make("avenc_aac", Some("aenc"))?;
            set_number(&e, "bitrate", bps)?;
            (e, Some(make("aacparse", Some("aparse"))?))
        }
        AudioCodec::Opus => {
            let e = make("opusenc", Some("aenc"))?;
            set_number(&e, "bitrate", bps)?;
            (e, Some(make("opusparse", Some("aparse"))?))
        }
    })
}

/// How much later than its input the audio encoder's first real sample comes out: AAC
/// encoders put 1024 priming samples first. Containers here carry no edit list for it, so the
/// room delays its video by the same amount to keep lips in sync. Opus signals its pre-skip in
/// the stream header, which players apply.
pub fn audio_encoder_delay(audio: &Audio) -> gst::ClockTime {
    match audio.codec {
        AudioCodec::Aac => gst::ClockTime::from_nseconds(
            1024 * gst::ClockTime::SECOND.nseconds() / u64::from(audio.sample_rate.max(1)),
        ),
        AudioCodec::Opus => gst::ClockTime::ZERO,
    }
}

/// The container for per-rung files and its file extension.
pub fn file_muxer(codec: VideoCodec, name: &str) -> Result<(gst::Element, &'static str)> {
    Ok(match codec {
        VideoCodec::Vp8 | VideoCodec::Vp9 => (make("matroskamux", Some(name))?, "mkv"),
        _ => (make("mp4mux", Some(name))?, "mp4"),
    })
}
