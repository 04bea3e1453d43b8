//! `qwen auth status`: a printout of the resolved configuration and whether a run could authenticate.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::app::{Context, load_config};
use crate::auth;
use crate::cli::ConfigArgs;
use crate::config::{ResolvedConfig, Source};
use crate::exit::ExitStatus;
use crate::output::{diag, write_stdout};

fn source_json(source: &Source) -> Value {
    match source {
        Source::Flag(name) => json!({"type": "flag", "name": name}),
        Source::Env(name) => json!({"type": "env", "name": name}),
        Source::DotEnv { path, .. } => json!({"type": "dotenv", "path": path}),
        Source::Setting(path) => json!({"type": "setting", "path": path}),
        Source::Default => json!({"type": "default"}),
    }
}

pub fn auth_status(args: &ConfigArgs, as_json: bool, ctx: &Context) -> ExitStatus {
    let config = match load_config(args, ctx) {
        Ok(c) => c,
        Err(e) => {
            if as_json {
                let doc =
                    json!({"ready": false, "error": {"type": e.kind(), "message": e.to_string()}});
                let _ = write_stdout(format!("{doc}\n").as_bytes());
            }
            diag::error(&e);
            return e.exit_status();
        }
    };
    let check = auth::credentials(&config);
    let text = if as_json {
        let mut doc = status_json(&config);
        doc["ready"] = json!(check.is_ok());
        doc["error"] = check.as_ref().err().map_or(
            Value::Null,
            |e| json!({"type": e.kind(), "message": e.to_string()}),
        );
        format!("{doc}\n")
    } else {
        let mut text = status_text(&config);
        let _ = match &check {
            Ok(_) => writeln!(text, "ready:       yes"),
            Err(e) => writeln!(
                text,
                "ready:       no: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
        text
    };
    let _ = write_stdout(text.as_bytes());
    match check {
        Ok(_) => ExitStatus::Success,
        Err(e) => {
            if !as_json {
                diag::error(&e);
            }
            e.exit_status()
        }
    }
}

fn status_json(config: &ResolvedConfig) -> Value {
    json!({
        "auth_type": {"value": config.auth_type.value, "source": source_json(&config.auth_type.source)},
        "api_key": {
            "value": config.api_key.as_ref().map(|k| auth::redact(&k.value)),
            "source": config.api_key.as_ref().map(|k| source_json(&k.source)),
            "set_but_empty": config.empty_key_sources.iter().map(source_json).collect::<Vec<_>>(),
        },
        "base_url": {"value": config.base_url.value.as_str(), "source": source_json(&config.base_url.source)},
        "model": {"value": config.model.value, "source": source_json(&config.model.source)},
        "dotenv": {
            "used": config.dotenv.found.as_ref().map(|f| &f.path),
            "probed": config.dotenv.probed,
        },
        "interactive": config.interactive,
        "debug": config.debug.is_some(),
    })
}

fn status_text(config: &ResolvedConfig) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "auth method: {} ({})",
        config.auth_type.value.as_str(),
        config.auth_type.source
    );
    let _ = match &config.api_key {
        Some(key) => writeln!(
            t,
            "api key:     {} ({})",
            auth::redact(&key.value),
            key.source
        ),
        None => writeln!(t, "api key:     (none)"),
    };
    for source in &config.empty_key_sources {
        let _ = writeln!(t, "             {source} is set but empty");
    }
    let _ = writeln!(
        t,
        "base url:    {} ({})",
        config.base_url.value, config.base_url.source
    );
    let _ = writeln!(
        t,
        "model:       {} ({})",
        config.model.value, config.model.source
    );
    let _ = match &config.dotenv.found {
        Some(f) => writeln!(t, ".env file:   {}", f.path.display()),
        None => writeln!(t, ".env file:   (none found)"),
    };
    for (i, path) in config.dotenv.probed.iter().enumerate() {
        let label = if i == 0 { "searched:" } else { "" };
        let _ = writeln!(t, "{label:<13}{}", path.display());
    }
    let _ = writeln!(
        t,
        "interactive: {}",
        if config.interactive { "yes" } else { "no" }
    );
    t
}
