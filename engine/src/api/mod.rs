//! The HTTP control plane: JSON model (`model`), route table (`routes`), the hyper server
//! (`http`), playback tokens (`token`) and WHIP/WHEP signalling (`webrtc`). Operations
//! themselves live in `service`.

pub mod http;
pub mod model;
pub mod routes;
pub mod token;
pub mod webrtc;
