//! loomiere's HTTP side: the exchange core ([`http`]: request → routing, signature check,
//! conditional and range handling → an answer with a plan as its body), its blocking drivers
//! ([`cgi`]: CGI/1.1 and inetd) and its async driver ([`serve`]), the configuration
//! ([`config`]) and the pacing of bodies ([`throttle`]). Plans come from the engine
//! (`loomiere-engine`), whose modules are re-exported here so that paths read the same in
//! both crates (`crate::mp4`, `crate::plan`).

pub use loomiere_engine::{
    container, error, fault, flv, fmp4, media, mp4, output, package, plan, request, sink, source, BareUnit, Container,
    Error, Kind, Piece, Plan, PlanInfo, Position, Request, Result, Source, Synth,
};

pub mod cgi;
pub mod config;
pub mod demo;
pub mod http;
pub mod serve;
pub mod throttle;
