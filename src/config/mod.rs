//! Configuration: variable names, `.env` discovery, and resolution with provenance.

pub mod dotenv;
pub mod dotenv_edit;
pub mod dotenv_parse;
pub mod env;
pub mod resolve;

pub use resolve::{AuthType, ConfigFlags, ResolvedConfig, Source, Sourced, Terminal};
