//! The HTTP control plane: JSON model (`model`), route table (`routes`), the hyper server
//! (`http`), playback tokens (`token`), WHIP/WHEP signalling (`webrtc`), the console's event
//! stream (`events`) and its embedded files (`console`). Operations themselves live in
//! `service`.

pub mod console;
pub mod events;
pub mod http;
pub mod model;
pub mod routes;
pub mod token;
pub mod webrtc;
