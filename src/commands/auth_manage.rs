//! `qwen auth use` (switch the method in `~/.qwen/settings.json`) and `qwen auth logout` (remove
//! cached OAuth credentials, and on request the key line a login wrote).

use std::path::PathBuf;

use crate::auth::oauth::creds::{self, CredsPaths, Freshness};
use crate::commands::login::env_file_target;
use crate::config::AuthType;
use crate::config::dotenv_edit;
use crate::config::env;
use crate::config::settings;
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fsutil;

fn home(ctx: &Context) -> Result<PathBuf, Error> {
    ctx.env.home().ok_or_else(|| {
        Error::config(
            "HOME is not set, so there is no `~/.qwen` to change",
            "set HOME",
        )
    })
}

/// `qwen auth use METHOD`.
pub(crate) fn use_method(method: AuthType, ctx: &Context) -> Result<ExitStatus, Error> {
    let home = home(ctx)?;
    let path = settings::save_selected_type(&home, method)?;
    diag::text(&format!(
        "Selected {} in {} (security.auth.selectedType); --auth-type still wins for a single run.\n",
        method.as_str(),
        path.display()
    ));
    if method == AuthType::QwenOauth {
        let paths = CredsPaths::new(&home);
        let usable = creds::load(&paths.creds)
            .ok()
            .flatten()
            .is_some_and(|c| c.freshness(creds::now_ms()) != Freshness::Dead);
        if !usable {
            diag::text(&format!(
                "note: there are no usable Qwen OAuth credentials in {} yet: run `qwen auth login --method qwen-oauth` in a terminal\n",
                paths.creds.display()
            ));
        }
    }
    Ok(ExitStatus::Success)
}

/// `qwen auth logout [--env [--user]]`.
pub(crate) fn logout(env_too: bool, user: bool, ctx: &Context) -> Result<ExitStatus, Error> {
    let home = ctx.env.home();
    let creds_path = home.as_deref().map(|h| CredsPaths::new(h).creds);
    let io = |path: &std::path::Path, e: std::io::Error| Error::file("change", path, e);

    let mut plan = Vec::new();
    let remove_creds = creds_path.as_ref().filter(|p| p.exists());
    if let Some(path) = remove_creds {
        plan.push(format!(
            "the cached Qwen OAuth credentials {}",
            path.display()
        ));
    }
    let mut env_edit = None;
    if env_too {
        let target = env_file_target(user, &ctx.cwd, home.as_deref())?;
        if let Ok(text) = std::fs::read_to_string(&target) {
            let (kept, removed) = dotenv_edit::remove_vars(&text, &[env::OPENAI_API_KEY]);
            if removed > 0 {
                plan.push(format!("the OPENAI_API_KEY line of {}", target.display()));
                env_edit = Some((target, kept));
            }
        }
    }

    if plan.is_empty() {
        let mut what = match &creds_path {
            Some(p) => format!("no cached Qwen OAuth credentials at {}", p.display()),
            None => "HOME is not set, so there are no cached credentials".to_owned(),
        };
        if env_too {
            what.push_str(" and no OPENAI_API_KEY line in the .env file");
        }
        diag::text(&format!("Nothing to remove: {what}.\n"));
        return Ok(ExitStatus::Success);
    }
    diag::text("Removing:\n");
    for item in &plan {
        diag::text(&format!("  - {item}\n"));
    }
    if let Some(path) = remove_creds {
        fsutil::remove_if_exists(path).map_err(|e| io(path, e))?;
    }
    if let Some((target, kept)) = env_edit {
        fsutil::write_private(&target, kept.as_bytes()).map_err(|e| io(&target, e))?;
    }
    diag::text("Done.\n");
    Ok(ExitStatus::Success)
}
