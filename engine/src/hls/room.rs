//! A room's ladder: one [`Track`] per rung, the multivariant playlist, and media playlists with
//! `EXT-X-RENDITION-REPORT` tags for the other rungs (the low-latency server configuration
//! profile, RFC 8216bis Appendix B, requires one per other rendition so that clients can switch
//! rungs without a tune-in round trip).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use super::playlist::multivariant;
use super::{HlsConfig, HlsError, PlaylistRequest, RungInfo, Track};

/// The HLS side of one room: tracks by rung name, in ladder order.
#[derive(Debug)]
pub struct HlsRoom {
    cfg: HlsConfig,
    rungs: Vec<RungInfo>,
    tracks: Vec<Arc<Track>>,
}

impl HlsRoom {
    /// Validates the configuration and the rungs (names unique path tokens, attributes sane)
    /// and creates an empty track per rung.
    pub fn new(cfg: HlsConfig, rungs: Vec<RungInfo>) -> Result<HlsRoom, HlsError> {
        cfg.validate()?;
        if rungs.is_empty() {
            return Err(HlsError::InvalidConfig(
                "a ladder needs at least one rung".into(),
            ));
        }
        for (i, r) in rungs.iter().enumerate() {
            r.validate()?;
            if rungs[..i].iter().any(|o| o.name == r.name) {
                return Err(HlsError::InvalidConfig(format!("rung {:?} twice", r.name)));
            }
        }
        let tracks = rungs
            .iter()
            .map(|r| Track::new(r.name.clone(), cfg.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(HlsRoom { cfg, rungs, tracks })
    }

    pub fn config(&self) -> &HlsConfig {
        &self.cfg
    }

    pub fn rungs(&self) -> &[RungInfo] {
        &self.rungs
    }

    /// The track of a rung.
    pub fn track(&self, name: &str) -> Option<&Arc<Track>> {
        self.tracks.iter().find(|t| t.name() == name)
    }

    /// All tracks, in the order the rungs were given.
    pub fn tracks(&self) -> impl Iterator<Item = &Arc<Track>> {
        self.tracks.iter()
    }

    /// The multivariant playlist (served at `/live/{room}/index.m3u8`).
    pub fn multivariant(&self) -> String {
        multivariant(&self.rungs)
    }

    /// A rung's media playlist now, with rendition reports for the other rungs.
    pub fn media_playlist(&self, rung: &str, req: PlaylistRequest) -> Result<String, HlsError> {
        let track = self.track(rung).ok_or(HlsError::NoSuchResource)?;
        Ok(self.with_reports(rung, &track.media_playlist_shared(req)))
    }

    /// A rung's media playlist after the blocking wait `req` asks for (see
    /// [`Track::blocking_playlist`]), with rendition reports.
    pub async fn blocking_playlist(
        &self,
        rung: &str,
        req: PlaylistRequest,
        timeout: Duration,
    ) -> Result<String, HlsError> {
        let track = self.track(rung).ok_or(HlsError::NoSuchResource)?;
        if req.part.is_some() && req.msn.is_none() {
            return Err(HlsError::BadRequest("_HLS_part without _HLS_msn".into()));
        }
        if let Some(msn) = req.msn {
            tokio::time::timeout(timeout, track.wait_for(msn, req.part))
                .await
                .map_err(|_| HlsError::Timeout)??;
        }
        self.media_playlist(rung, req)
    }

    /// Ends every track (`EXT-X-ENDLIST`).
    pub fn finish(&self) {
        for t in &self.tracks {
            t.finish();
        }
    }

    fn with_reports(&self, rung: &str, playlist: &str) -> String {
        let mut out = String::with_capacity(playlist.len() + 80 * self.tracks.len());
        out.push_str(playlist);
        for other in self.tracks.iter().filter(|t| t.name() != rung) {
            // LAST-MSN / LAST-PART: the other rung's last published part (§4.4.5.4). A rung
            // with nothing yet gets no report.
            if let Some((msn, part)) = other.edge().last_part() {
                let _ = writeln!(
                    out,
                    "#EXT-X-RENDITION-REPORT:URI=\"../{}/index.m3u8\",LAST-MSN={msn},LAST-PART={part}",
                    other.name()
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::checker::{Checker, check_multivariant};
    use crate::hls::track::tests::Feeder;
    use bytes::Bytes;

    fn rung(name: &str, h: u32, bw: u64) -> RungInfo {
        RungInfo {
            name: name.into(),
            width: h * 16 / 9,
            height: h,
            fps: 30.0,
            bandwidth_bps: bw,
            average_bandwidth_bps: bw * 9 / 10,
            codecs: "avc1.64001f,mp4a.40.2".into(),
        }
    }

    fn room() -> HlsRoom {
        let rungs = vec![
            rung("480p", 480, 1_500_000),
            rung("720p", 720, 3_000_000),
            rung("360p", 360, 800_000),
        ];
        let room = HlsRoom::new(HlsConfig::default(), rungs).unwrap();
        for t in room.tracks() {
            t.set_init(Bytes::from_static(b"init"));
        }
        room
    }

    #[test]
    fn new_validates_the_ladder() {
        let cfg = HlsConfig::default();
        assert!(HlsRoom::new(cfg.clone(), vec![]).is_err());
        let dup = vec![rung("720p", 720, 3_000_000), rung("720p", 720, 2_000_000)];
        assert!(HlsRoom::new(cfg.clone(), dup).is_err());
        assert!(HlsRoom::new(cfg.clone(), vec![rung("../x", 720, 1)]).is_err());
        let bad_cfg = HlsConfig {
            window_segments: 1,
            ..cfg
        };
        assert!(HlsRoom::new(bad_cfg, vec![rung("720p", 720, 1)]).is_err());
    }

    #[test]
    fn tracks_by_name_and_multivariant() {
        let room = room();
        assert_eq!(room.track("720p").unwrap().name(), "720p");
        assert!(room.track("1080p").is_none());
        let names = check_multivariant(&room.multivariant()).unwrap();
        assert_eq!(names, vec!["720p", "480p", "360p"]);
    }

    #[test]
    fn media_playlists_carry_rendition_reports() {
        let room = room();
        let mut feeders: Vec<Feeder> = (0..3).map(|_| Feeder::new()).collect();
        for (t, f) in room.tracks().zip(&mut feeders) {
            f.push(t, 12);
        }
        // 360p lags one part behind.
        feeders[0].push(room.track("480p").unwrap(), 1);
        feeders[1].push(room.track("720p").unwrap(), 1);
        let text = room
            .media_playlist("720p", PlaylistRequest::default())
            .unwrap();
        let pl = Checker::new()
            .check(&text, room.config())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(pl.reports.len(), 2);
        let reports: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-RENDITION-REPORT"))
            .collect();
        assert_eq!(
            reports,
            vec![
                "#EXT-X-RENDITION-REPORT:URI=\"../480p/index.m3u8\",LAST-MSN=2,LAST-PART=2",
                "#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=2,LAST-PART=1",
            ]
        );
        assert!(!text.contains("../720p/"));
        assert_eq!(
            room.media_playlist("1080p", PlaylistRequest::default()),
            Err(HlsError::NoSuchResource)
        );
    }

    #[tokio::test]
    async fn room_blocking_playlist_waits_on_the_rung() {
        let room = Arc::new(room());
        let t720 = room.track("720p").unwrap().clone();
        let mut f = Feeder::new();
        f.push(&t720, 3);
        let req = PlaylistRequest {
            msn: Some(0),
            part: Some(3),
            skip: false,
        };
        let waiter = tokio::spawn({
            let room = room.clone();
            async move {
                room.blocking_playlist("720p", req, Duration::from_secs(5))
                    .await
            }
        });
        tokio::task::yield_now().await;
        f.push(&t720, 1);
        let text = waiter.await.unwrap().unwrap();
        assert!(text.contains("URI=\"part0.3.m4s\""), "{text}");
        let r = room
            .blocking_playlist("720p", req, Duration::from_millis(1))
            .await;
        assert!(r.is_ok());
        let ahead = PlaylistRequest {
            msn: Some(9),
            part: None,
            skip: false,
        };
        let r = room
            .blocking_playlist("720p", ahead, Duration::from_secs(1))
            .await;
        assert_eq!(r.unwrap_err().http_status(), 400);
        room.finish();
        assert!(
            room.media_playlist("360p", PlaylistRequest::default())
                .unwrap()
                .contains("#EXT-X-ENDLIST")
        );
    }
}
