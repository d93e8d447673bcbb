//! The ffmpeg side of the PK benchmarks: the filter graph and encoder settings a user would
//! write to do what a `pk` room with the `showroom-720p` ladder does (each 1280x720 input
//! centre-cropped to its 640x720 half, side by side, scaled per rung, x264 veryfast
//! zerolatency with the ladder's bitrates, x264enc's VBV, 1 s GOP without scene cuts, no
//! B-frames; the two audio tracks mixed, AAC 128k per rung as ffmpeg needs one per output).

use showmix::presets::ladder::Ladder;

pub struct Rungs {
    pub names: Vec<String>,
    pub dims: Vec<(u32, u32)>,
    pub kbps: Vec<u32>,
}

impl Rungs {
    pub fn of(ladder: &Ladder) -> Rungs {
        Rungs {
            names: ladder.rungs.iter().map(|r| r.name.clone()).collect(),
            dims: ladder.rungs.iter().map(|r| (r.width, r.height)).collect(),
            kbps: ladder.rungs.iter().map(|r| r.bitrate_kbps).collect(),
        }
    }
}

/// `-filter_complex` for inputs 0 and 1: pads `[v{i}]` and `[a{i}]` per rung.
pub fn filter_graph(r: &Rungs) -> String {
    let n = r.names.len();
    let mut graph =
        String::from("[0:v]crop=640:720:320:0[l];[1:v]crop=640:720:320:0[r];[l][r]hstack=inputs=2");
    graph += &format!(",split={n}");
    for i in 0..n {
        graph += &format!("[s{i}]");
    }
    graph += ";[0:a][1:a]amix=inputs=2:normalize=0";
    graph += &format!(",asplit={n}");
    for i in 0..n {
        graph += &format!("[a{i}]");
    }
    for (i, (w, h)) in r.dims.iter().enumerate() {
        if (*w, *h) == (1280, 720) {
            graph += &format!(";[s{i}]null[v{i}]");
        } else {
            graph += &format!(";[s{i}]scale={w}:{h}[v{i}]");
        }
    }
    graph
}

/// Encoder options for one rung at `kbps`; `spec` is the stream specifier suffix (`""` for
/// per-output options, `":v:0"` style for one output with several streams).
pub fn x264_args(kbps: u32, spec: &str) -> Vec<String> {
    let mut a: Vec<String> = ["-preset", "veryfast", "-tune", "zerolatency"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend([
        format!("-b{spec}"),
        format!("{kbps}k"),
        format!("-maxrate{spec}"),
        format!("{kbps}k"),
        // x264enc's default VBV buffer is 600 ms of the bitrate.
        format!("-bufsize{spec}"),
        format!("{}k", kbps * 6 / 10),
    ]);
    a.extend(
        [
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a
}
