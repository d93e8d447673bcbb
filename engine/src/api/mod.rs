//! The HTTP control plane: JSON model (`model`), route table (`routes`) and the hyper server
//! (`http`). Operations themselves live in `service`.

pub mod http;
pub mod model;
pub mod routes;
pub mod token;
