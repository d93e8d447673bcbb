//! The report's pictures and page: rate–distortion curves per source, per-frame quality over
//! time with keyframes marked, CPU per codec, drawn as SVG with plotters, and `report.html`
//! that shows them with the tables. Everything is local files: the page reads offline.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use super::report::{Encode, FrameRow, Report};

const W: u32 = 900;
const H: u32 = 480;

fn colour(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    P[i % P.len()]
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw a chart: {e:?}")
}

/// A chart file written next to the report, for the page.
pub struct Chart {
    pub title: String,
    pub file: String,
}

fn ok_encodes(report: &Report) -> Vec<&Encode> {
    report
        .encodes
        .iter()
        .filter(|e| e.error.is_none() && e.psnr_y.is_some())
        .collect()
}

/// Rate–distortion: PSNR-Y against bitrate (log axis), a line per codec × rung × encoder.
fn rd_chart(report: &Report, source: &str) -> Result<Option<String>> {
    let es: Vec<&Encode> = ok_encodes(report)
        .into_iter()
        .filter(|e| e.source == source)
        .collect();
    if es.is_empty() {
        return Ok(None);
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for e in &es {
        let q = e.psnr_y.unwrap_or_default();
        x0 = x0.min(e.bitrate_kbps);
        x1 = x1.max(e.bitrate_kbps);
        y0 = y0.min(q);
        y1 = y1.max(q);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Rate–distortion: {source}"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                ((x0 * 0.8).max(1.0)..x1 * 1.25).log_scale(),
                (y0 - 1.0).floor()..(y1 + 1.0).ceil(),
            )
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("bitrate (kbit/s, log)")
            .y_desc("PSNR-Y (dB)")
            .draw()
            .map_err(draw_err)?;
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for e in &es {
            let name = format!("{} {} {} {}", e.codec, e.rung, e.speed, e.encoder);
            let p = (e.bitrate_kbps, e.psnr_y.unwrap_or_default());
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(p),
                None => series.push((name, vec![p])),
            }
        }
        for (i, (name, mut pts)) in series.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = colour(i);
            let dashed = name.ends_with("ffmpeg");
            let style = c.stroke_width(if dashed { 1 } else { 2 });
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Some(svg))
}

/// Per-frame PSNR-Y over time for one source and codec, a line per encode, keyframes as
/// triangles on their line.
fn frames_chart(
    report: &Report,
    rows: &HashMap<String, Vec<FrameRow>>,
    source: &str,
    codec: &str,
) -> Result<Option<String>> {
    let es: Vec<&Encode> = ok_encodes(report)
        .into_iter()
        .filter(|e| e.source == source && e.codec == codec && rows.contains_key(&e.id))
        .collect();
    if es.is_empty() {
        return Ok(None);
    }
    let fps = f64::from(report.settings.fps.max(1));
    let mut t1: f64 = 0.1;
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for e in &es {
        for r in &rows[&e.id] {
            if let Some(q) = r.psnr_y() {
                y0 = y0.min(q);
                y1 = y1.max(q);
            }
            t1 = t1.max(r.seconds + 1.0 / fps);
        }
    }
    if y0 > y1 {
        return Ok(None);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Per-frame PSNR-Y: {source}, {codec} (▲ keyframes)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..t1, (y0 - 1.0).floor()..(y1 + 1.0).ceil())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("PSNR-Y (dB)")
            .draw()
            .map_err(draw_err)?;
        for (i, e) in es.iter().enumerate() {
            let c = colour(i);
            let r = &rows[&e.id];
            let pts: Vec<(f64, f64)> = r
                .iter()
                .filter_map(|f| f.psnr_y().map(|q| (f.seconds, q)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(draw_err)?
                .label(format!("{} {} {}", e.rung, e.target(), e.encoder))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(r.iter().filter(|f| f.key).filter_map(|f| {
                    f.psnr_y()
                        .map(|q| TriangleMarker::new((f.seconds, q), 6, c.filled()))
                }))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Some(svg))
}

/// CPU seconds per content second, mean over each codec's encodes, one bar per codec and
/// encoder.
fn cpu_chart(report: &Report) -> Result<Option<String>> {
    let mut bars: Vec<(String, f64, usize)> = Vec::new();
    for e in ok_encodes(report) {
        let Some(s) = &e.speed_stats else { continue };
        let name = format!("{} {}", e.codec, e.encoder);
        match bars.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, sum, n)) => {
                *sum += s.cpu_per_content_second;
                *n += 1;
            }
            None => bars.push((name, s.cpu_per_content_second, 1)),
        }
    }
    if bars.is_empty() {
        return Ok(None);
    }
    let means: Vec<(String, f64)> = bars
        .into_iter()
        .map(|(n, s, k)| (n, s / k as f64))
        .collect();
    let top = means.iter().map(|m| m.1).fold(0.0f64, f64::max).max(0.01) * 1.15;
    let names: Vec<String> = means.iter().map(|m| m.0.clone()).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("CPU seconds per content second", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..(means.len() as f64 - 0.5), 0.0..top)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(means.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("CPU s / content s")
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(means.iter().enumerate().map(|(i, (_, v))| {
                let x = i as f64;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *v)], colour(i).filled())
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Some(svg))
}

/// Writes every chart as an SVG file in `dir` and returns them in page order.
pub fn write_charts(
    dir: &Path,
    report: &Report,
    rows: &HashMap<String, Vec<FrameRow>>,
) -> Result<Vec<Chart>> {
    let mut out = Vec::new();
    let mut save = |file: String, title: String, svg: Option<String>| -> Result<()> {
        if let Some(svg) = svg {
            let path = dir.join(&file);
            std::fs::write(&path, svg)
                .with_context(|| format!("cannot write {}", path.display()))?;
            out.push(Chart { title, file });
        }
        Ok(())
    };
    for (i, s) in report.sources.iter().enumerate() {
        save(
            format!("rd-{i}-{}.svg", s.id),
            format!("Rate–distortion, {}", s.source),
            rd_chart(report, &s.id)?,
        )?;
        for codec in &report.settings.codecs {
            save(
                format!("frames-{i}-{}-{codec}.svg", s.id),
                format!("Per-frame quality, {}, {codec}", s.source),
                frames_chart(report, rows, &s.id, codec)?,
            )?;
        }
    }
    save("cpu.svg".into(), "CPU per codec".into(), cpu_chart(report)?)?;
    Ok(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The page: settings, notes, the encode table, BD-rates, hulls, then the charts.
pub fn html(report: &Report, charts: &[Chart]) -> String {
    let mut h = String::new();
    let s = &report.settings;
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>showmix encode test</title>\n<style>body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:1em 0;font-size:90%}}td,th{{border:1px solid #bbb;padding:3px 7px;text-align:right}}th{{background:#eee}}td.l,th.l{{text-align:left}}img{{display:block;margin:1em 0;max-width:100%;border:1px solid #ddd}}.err{{color:#b00}}</style></head><body>\n<h1>showmix encode test</h1>\n"
    );
    let _ = writeln!(
        h,
        "<p>Ladder <b>{}</b> on a {}×{} canvas at {} fps, GOP {} frames, live constraints {}; {:.2} s per source; schema {} v{}{}.</p>",
        esc(&s.ladder),
        s.canvas_width,
        s.canvas_height,
        s.fps,
        s.gop_frames,
        if s.live {
            "on (zero-latency, no B-frames, fixed GOP)"
        } else {
            "off"
        },
        s.duration_seconds,
        esc(&report.schema),
        report.schema_version,
        if report.complete {
            ""
        } else {
            " — <b class=\"err\">partial: the run did not finish</b>"
        }
    );
    let _ = writeln!(h, "<p>Reference scaling: {}.</p>", esc(&s.scaling_filter));
    if !report.notes.is_empty() {
        h.push_str("<ul>\n");
        for n in &report.notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    for e in &report.errors {
        let _ = writeln!(h, "<p class=\"err\">{}</p>", esc(e));
    }
    h.push_str("<h2>Encodes</h2>\n<table><tr><th class=\"l\">source</th><th class=\"l\">encoder</th><th class=\"l\">codec</th><th class=\"l\">speed</th><th class=\"l\">rung</th><th>target</th><th>kbit/s</th><th>frames</th><th>keyframes</th><th>PSNR-Y</th><th>PSNR-YUV</th><th>SSIM</th><th>VMAF</th><th>fps</th><th>CPU s / s</th><th>realtime ×</th><th>peak RSS MiB</th></tr>\n");
    for e in &report.encodes {
        let sp = e.speed_stats.as_ref();
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.source),
            esc(&e.encoder),
            esc(&e.codec),
            esc(&e.speed),
            esc(&e.rung),
            esc(&e.target()),
            e.bitrate_kbps,
            e.frames,
            e.keyframes,
            num(e.psnr_y, 2),
            num(e.psnr_yuv, 2),
            num(e.ssim, 4),
            num(e.vmaf, 2),
            num(sp.map(|s| s.fps), 1),
            num(sp.map(|s| s.cpu_per_content_second), 3),
            num(sp.map(|s| s.realtime_factor), 2),
            num(sp.map(|s| s.peak_rss_kib as f64 / 1024.0), 1),
        );
        if let Some(err) = &e.error {
            let _ = writeln!(
                h,
                "<tr><td class=\"l err\" colspan=\"17\">{}: {}</td></tr>",
                esc(&e.id),
                esc(err)
            );
        }
    }
    h.push_str("</table>\n");
    if !report.bd_rates.is_empty() {
        h.push_str("<h2>BD-rate (VCEG-M33) against the first codec</h2>\n<p>Negative: less rate for the same quality.</p>\n<table><tr><th class=\"l\">source</th><th class=\"l\">encoder</th><th class=\"l\">speed</th><th class=\"l\">rung</th><th class=\"l\">metric</th><th class=\"l\">anchor</th><th class=\"l\">codec</th><th>BD-rate %</th><th class=\"l\">note</th></tr>\n");
        for b in &report.bd_rates {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(&b.source),
                esc(&b.encoder),
                esc(&b.speed),
                esc(&b.rung),
                esc(&b.metric),
                esc(&b.anchor),
                esc(&b.codec),
                num(b.percent, 2),
                esc(b.note.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }
    if !report.hulls.is_empty() {
        h.push_str("<h2>Convex hull across rungs (PSNR-Y)</h2>\n<table><tr><th class=\"l\">source</th><th class=\"l\">encoder</th><th class=\"l\">codec</th><th class=\"l\">speed</th><th class=\"l\">encodes on the hull</th></tr>\n");
        for u in &report.hulls {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&u.source),
                esc(&u.encoder),
                esc(&u.codec),
                esc(&u.speed),
                esc(&u.encodes.join(", "))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Charts</h2>\n");
    for c in charts {
        let _ = writeln!(
            h,
            "<h3>{}</h3>\n<img class=\"chart\" src=\"{}\" alt=\"{}\" width=\"{W}\" height=\"{H}\">",
            esc(&c.title),
            esc(&c.file),
            esc(&c.title)
        );
    }
    h.push_str("<p>Numbers: <a href=\"report.json\">report.json</a>, per frame: <a href=\"frames.csv\">frames.csv</a>.</p>\n</body></html>\n");
    h
}
