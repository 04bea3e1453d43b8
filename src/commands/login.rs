//! The terminal dialogue of `qwen auth login` (also offered by a run in a terminal that has no
//! credentials): choose a method, then set up an API key — checked with one cheap request and saved
//! to `.qwen/.env` — or run the Qwen OAuth device flow. Every word goes to stderr, never stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::oauth::creds::{self, CredsPaths, OAuthCreds};
use crate::auth::oauth::{self, Endpoints, Pkce, PollEvent, printable};
use crate::auth::{self, KEY_ADVICE};
use crate::client::url::endpoint;
use crate::config::dotenv_edit;
use crate::config::env::{self, EnvSnapshot};
use crate::config::resolve::{self, DEFAULT_BASE_URL, DEFAULT_MODEL, is_interactive};
use crate::config::settings;
use crate::config::{AuthType, dotenv};
use crate::context::Context;
use crate::diag;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::gitignore;

/// The person at the terminal, behind a trait so that the dialogue can be tested without one.
pub(crate) trait Prompter {
    /// Text for the person.
    fn say(&mut self, text: &str);
    /// A visible answer; `Ok(None)` at the end of input.
    fn ask(&mut self, question: &str) -> Result<Option<String>, Error>;
    /// A hidden answer: never echoed.
    fn ask_secret(&mut self, question: &str) -> Result<SecretString, Error>;
}

/// The real terminal: questions on stderr, visible answers from stdin, hidden ones from the
/// controlling terminal with echo off (rpassword).
pub(crate) struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn say(&mut self, text: &str) {
        diag::text(text);
    }

    fn ask(&mut self, question: &str) -> Result<Option<String>, Error> {
        diag::prompt(question);
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line.trim().to_owned())),
            Err(source) => Err(Error::Io {
                context: "cannot read the answer".to_owned(),
                source,
            }),
        }
    }

    fn ask_secret(&mut self, question: &str) -> Result<SecretString, Error> {
        diag::prompt(question);
        rpassword::read_password()
            .map(|s| SecretString::from(s.trim().to_owned()))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => cancelled(),
                std::io::ErrorKind::Interrupted => Error::Interrupted {
                    signal: crate::signals::Signal::Interrupt,
                },
                _ => Error::Io {
                    context: "cannot read the key from the terminal".to_owned(),
                    source: e,
                },
            })
    }
}

/// What `qwen auth login` was asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoginOptions {
    /// Skip the menu.
    pub(crate) method: Option<AuthType>,
    /// Save the key in `~/.qwen/.env` instead of the project's `.qwen/.env`.
    pub(crate) user: bool,
    /// Check the key with one request before saving it.
    pub(crate) verify: bool,
}

fn cancelled() -> Error {
    Error::auth("login cancelled: no answer", KEY_ADVICE)
}

/// `qwen auth login`: refuses at once outside a terminal, else runs the dialogue.
pub(crate) fn command(
    opts: LoginOptions,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitStatus, Error> {
    let result = if is_interactive(ctx.terminal, &ctx.env) {
        login(opts, ctx, runtime, &mut TerminalPrompter).map(|_| ())
    } else {
        Err(Error::auth(
            "`qwen auth login` needs a person at a terminal, and this session is not interactive (stdin or stderr is not a terminal, or CI is set)",
            KEY_ADVICE,
        ))
    };
    result.map(|()| ExitStatus::Success)
}

/// The whole dialogue; returns the method that was set up.
pub(crate) fn login(
    opts: LoginOptions,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    prompter: &mut dyn Prompter,
) -> Result<AuthType, Error> {
    let method = match opts.method {
        Some(m) => m,
        None => choose_method(prompter)?,
    };
    match method {
        AuthType::Openai | AuthType::OpenaiResponses => {
            api_key_login(opts, ctx, runtime, prompter)?;
        }
        AuthType::QwenOauth => oauth_login(ctx, runtime, prompter)?,
        AuthType::Anthropic | AuthType::Gemini | AuthType::VertexAi => {
            let vars = method.vars().map_or_else(String::new, |v| {
                format!(
                    "{} (and optionally {}, {})",
                    v.keys.join(" or "),
                    v.base_url,
                    v.model
                )
            });
            return Err(Error::auth(
                format!(
                    "`qwen auth login` sets up an OpenAI-compatible key or Qwen OAuth; --auth-type {} reads its key from {vars}",
                    method.as_str()
                ),
                format!(
                    "put {vars} in the environment or in `.qwen/.env`, then run `qwen auth use {}`",
                    method.as_str()
                ),
            ));
        }
    }
    record_selection(ctx.env.home().as_deref(), method, prompter);
    Ok(method)
}

const MENU: &str = "\
How do you want to authenticate?
  1. OpenAI-compatible API key (OpenAI, OpenRouter, DashScope / Model Studio, vLLM, a local server, ...)
  2. Qwen OAuth (log in with a browser at chat.qwen.ai)
";

/// The menu: `1`/`openai` (the default) or `2`/`qwen-oauth`; three tries.
pub(crate) fn choose_method(prompter: &mut dyn Prompter) -> Result<AuthType, Error> {
    prompter.say(MENU);
    for _ in 0..3 {
        let Some(answer) = prompter.ask("Choose 1 or 2 [1]: ")? else {
            return Err(cancelled());
        };
        match answer.to_ascii_lowercase().as_str() {
            "" | "1" | "openai" => return Ok(AuthType::Openai),
            "2" | "qwen-oauth" => return Ok(AuthType::QwenOauth),
            _ => prompter.say("Please answer 1 or 2.\n"),
        }
    }
    Err(Error::auth("login cancelled: no method chosen", KEY_ADVICE))
}

/// A visible question with a default taken on an empty answer.
fn ask_with_default(
    prompter: &mut dyn Prompter,
    label: &str,
    default: &str,
) -> Result<String, Error> {
    let answer = prompter
        .ask(&format!("{label} [{default}]: "))?
        .ok_or_else(cancelled)?;
    Ok(if answer.is_empty() {
        default.to_owned()
    } else {
        answer
    })
}

fn confirm(prompter: &mut dyn Prompter, question: &str) -> Result<bool, Error> {
    Ok(prompter
        .ask(question)?
        .is_some_and(|a| matches!(a.to_ascii_lowercase().as_str(), "y" | "yes")))
}

/// Where the API-key method saves: the project's `.qwen/.env`, or `~/.qwen/.env` with `--user`.
pub(crate) fn env_file_target(
    user: bool,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<PathBuf, Error> {
    if user {
        let home = home.ok_or_else(|| {
            Error::config(
                "HOME is not set, so there is no `~/.qwen/.env`",
                "run without --user to save in the project's `.qwen/.env`",
            )
        })?;
        Ok(home.join(".qwen").join(".env"))
    } else {
        Ok(cwd.join(".qwen").join(".env"))
    }
}

fn api_key_login(
    opts: LoginOptions,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    prompter: &mut dyn Prompter,
) -> Result<(), Error> {
    let home = ctx.env.home();
    let target = env_file_target(opts.user, &ctx.cwd, home.as_deref())?;
    let key = prompter.ask_secret("API key (input hidden): ")?;
    if key.expose_secret().is_empty() {
        return Err(Error::auth("no API key entered", KEY_ADVICE));
    }
    prompter.say(&format!("Key received: {}\n", crate::secret::redact(&key)));
    let (base_text, base_url) = ask_base_url(prompter)?;
    let model = ask_with_default(prompter, "Model", DEFAULT_MODEL)?;
    if let Some(warning) = auth::plaintext_warning(&base_url) {
        prompter.say(&format!("{warning}\n"));
    }
    if opts.verify {
        check_before_saving(runtime, prompter, &base_url, &key, &model)?;
    }
    save_env_file(&target, &key, &base_text, &model)?;
    prompter.say(&format!(
        "Saved OPENAI_API_KEY ({}), OPENAI_BASE_URL and OPENAI_MODEL to {} (mode 0600).\n",
        crate::secret::redact(&key),
        target.display()
    ));
    if !opts.user {
        match gitignore::ensure_ignored(&target) {
            Ok(gitignore::Outcome::Added { gitignore, line }) => prompter.say(&format!(
                "Added `{line}` to {} so that the key stays out of git.\n",
                gitignore.display()
            )),
            Ok(_) => {}
            Err(e) => prompter.say(&format!(
                "warning: could not update .gitignore ({e}); keep `.qwen/.env` out of git yourself\n"
            )),
        }
    }
    for note in precedence_notes(&target, ctx) {
        prompter.say(&format!("note: {note}\n"));
    }
    Ok(())
}

fn ask_base_url(prompter: &mut dyn Prompter) -> Result<(String, Url), Error> {
    let mut last = None;
    for _ in 0..3 {
        let text = ask_with_default(prompter, "Base URL", DEFAULT_BASE_URL)?;
        match resolve::parse_base_url(&text, &crate::config::Source::Default) {
            Ok(url) => return Ok((text, url)),
            Err(e) => {
                prompter.say(&format!(
                    "That is not a usable base URL ({e}); try again, e.g. https://api.openai.com/v1\n"
                ));
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(cancelled))
}

/// Run the check and, when it did not pass, ask whether to save anyway.
fn check_before_saving(
    runtime: &tokio::runtime::Runtime,
    prompter: &mut dyn Prompter,
    base_url: &Url,
    key: &SecretString,
    model: &str,
) -> Result<(), Error> {
    prompter.say(&format!(
        "Checking the key with GET {} ...\n",
        endpoint(base_url, "models")
    ));
    let verdict = runtime.block_on(verify_key(base_url, key, model));
    let (problem, why) = match verdict {
        Verification::Verified(how) => {
            prompter.say(&format!("The key works ({how}).\n"));
            return Ok(());
        }
        Verification::Rejected(detail) => ("the server refused the key", detail),
        Verification::Unverified(detail) => ("the key could not be checked", detail),
    };
    prompter.say(&format!("{}: {why}\n", capitalise(problem)));
    if confirm(prompter, "Save it anyway? [y/N]: ")? {
        return Ok(());
    }
    Err(Error::auth(
        format!("nothing was saved: {problem} ({why})"),
        "check the key and the base URL and run `qwen auth login` again, or skip the check with --no-verify",
    ))
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// The result of the cheap check before saving a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verification {
    /// How it was verified.
    Verified(String),
    /// HTTP 401/403.
    Rejected(String),
    /// The server could not be reached or answered something else.
    Unverified(String),
}

/// `GET {base}/models` with the key; when the server has no such endpoint (or answers it with
/// another error than 401/403), one chat request with `max_tokens: 1`.
pub(crate) async fn verify_key(base_url: &Url, key: &SecretString, model: &str) -> Verification {
    let http = match crate::client::one_off_http_client(base_url) {
        Ok(h) => h,
        Err(e) => return Verification::Unverified(e.to_string()),
    };
    let Ok(mut bearer) = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())) else {
        return Verification::Rejected(
            "the key contains characters not allowed in an HTTP header".into(),
        );
    };
    bearer.set_sensitive(true);
    let summary = |status: reqwest::StatusCode, body: &str| {
        // Server text: through the one door (key removed, one line, no escapes or commands).
        let short = crate::sanitize::line(body.trim(), Some(key.expose_secret()), 200);
        if short.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {short}", status.as_u16())
        }
    };
    let models = http
        .get(endpoint(base_url, "models"))
        .header(AUTHORIZATION, bearer.clone())
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    let first = match models {
        Ok(r) if r.status().is_success() => {
            return Verification::Verified(format!("GET /models: HTTP {}", r.status().as_u16()));
        }
        Ok(r) => {
            let status = r.status();
            let body = capped_text(r).await;
            if matches!(status.as_u16(), 401 | 403) {
                return Verification::Rejected(format!("GET /models: {}", summary(status, &body)));
            }
            format!("GET /models: {}", summary(status, &body))
        }
        Err(e) => return Verification::Unverified(crate::secret::scrub(&e.to_string(), key)),
    };
    let chat = http
        .post(endpoint(base_url, "chat/completions"))
        .header(AUTHORIZATION, bearer)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(
            json!({
                "model": model,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            })
            .to_string(),
        )
        .send()
        .await;
    match chat {
        Ok(r) if r.status().is_success() => Verification::Verified(format!(
            "{first}, then a one-token chat request: HTTP {}",
            r.status().as_u16()
        )),
        Ok(r) => {
            let status = r.status();
            let body = capped_text(r).await;
            let detail = format!(
                "{first}; a one-token chat request: {}",
                summary(status, &body)
            );
            if matches!(status.as_u16(), 401 | 403) {
                Verification::Rejected(detail)
            } else {
                Verification::Unverified(detail)
            }
        }
        Err(e) => Verification::Unverified(format!(
            "{first}; {}",
            crate::secret::scrub(&e.to_string(), key)
        )),
    }
}

/// Set the three variables in `target`, keeping its other lines; atomic write, mode 0600.
pub(crate) fn save_env_file(
    target: &Path,
    key: &SecretString,
    base_url: &str,
    model: &str,
) -> Result<(), Error> {
    let existing = match std::fs::read_to_string(target) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::file("read", target, e));
        }
    };
    let text = dotenv_edit::set_vars(
        &existing,
        &[
            (env::OPENAI_API_KEY, key.expose_secret()),
            (env::OPENAI_BASE_URL, base_url),
            (env::OPENAI_MODEL, model),
        ],
    )
    .map_err(|e| Error::Config {
        message: e.to_string(),
        hint: Some("use a value without it, or edit the file by hand".to_owned()),
    })?;
    crate::fsutil::write_private(target, text.as_bytes())
        .map_err(|e| Error::file("write", target, e))
}

/// Things that would keep the saved file from being used from this directory.
fn precedence_notes(target: &Path, ctx: &Context) -> Vec<String> {
    let mut notes = Vec::new();
    if ctx.env.get(env::OPENAI_API_KEY).is_some() {
        notes.push("OPENAI_API_KEY is set in the environment and wins over the file".to_owned());
    }
    if let Ok(search) = dotenv::discover(&ctx.cwd, ctx.env.home().as_deref())
        && let Some(found) = search.found
        && found.path != target
    {
        notes.push(format!(
            "{} is found first from {} and is the file that will be used (only one .env file is read)",
            found.path.display(),
            ctx.cwd.display()
        ));
    }
    notes
}

/// Whether a browser may be opened for `url`, and if not, why.
pub(crate) fn browser_decision(env: &EnvSnapshot, url: Option<&Url>) -> Result<(), &'static str> {
    if env.flag(env::QWEN_NO_BROWSER) {
        return Err("QWEN_NO_BROWSER is set");
    }
    if env
        .get(env::BROWSER)
        .is_some_and(|b| b.trim().eq_ignore_ascii_case("none"))
    {
        return Err("BROWSER=none");
    }
    if url.is_none() {
        return Err("the page is not an http(s) URL");
    }
    if cfg!(all(unix, not(target_os = "macos")))
        && env.get(env::DISPLAY).is_none()
        && env.get(env::WAYLAND_DISPLAY).is_none()
    {
        return Err("no graphical display");
    }
    Ok(())
}

fn oauth_login(
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
    prompter: &mut dyn Prompter,
) -> Result<(), Error> {
    let endpoints = Endpoints::from_env(&ctx.env)?;
    let home = ctx.env.home().ok_or_else(|| {
        Error::config(
            "HOME is not set, so there is nowhere to keep the Qwen OAuth credentials",
            "set HOME, or use the API-key method",
        )
    })?;
    let paths = CredsPaths::new(&home);
    let http = oauth::http_client(&endpoints)?;
    let pkce = Pkce::generate()?;
    prompter.say(&format!(
        "Qwen OAuth: asking {} for a login code ...\n",
        endpoints.base
    ));
    let device = runtime.block_on(oauth::request_device_code(&http, &endpoints, &pkce))?;
    prompter.say(&format!(
        "\nOpen this page in a browser and approve the login:\n\n    {}\n\nThe page should show the code {}.\n",
        printable(device.page()),
        printable(&device.user_code)
    ));
    let url = device.browser_url();
    if browser_decision(&ctx.env, url.as_ref()).is_ok()
        && let Some(url) = url
    {
        if webbrowser::open(url.as_str()).is_ok() {
            prompter.say("(Opened in your browser.)\n");
        } else {
            prompter.say("(Could not open a browser: open the page yourself.)\n");
        }
    }
    prompter.say(&format!(
        "Waiting for the approval (the code is valid for {} s; Ctrl-C to cancel) ...\n",
        device.expires_in()
    ));
    let unit = oauth::poll_unit(&ctx.env);
    let grant = runtime.block_on(async {
        let mut on_event = |event: PollEvent| {
            if let PollEvent::SlowedDown { interval } = event {
                prompter.say(&format!(
                    "(The server asked to poll more slowly: every {interval} s.)\n"
                ));
            }
        };
        tokio::select! {
            r = oauth::wait_for_token(&http, &endpoints, &device, &pkce, unit, &mut on_event) => r,
            signal = crate::signals::interrupted() => Err(Error::Interrupted { signal }),
        }
    })?;
    let creds = OAuthCreds::from_grant(grant, creds::now_ms(), None);
    let base = creds.api_base_url()?;
    creds::save(&paths.creds, &creds)?;
    prompter.say(&format!(
        "Logged in with Qwen OAuth. Credentials cached in {} (mode 0600); requests will go to {base}.\n",
        paths.creds.display()
    ));
    Ok(())
}

/// After a login, make the method the selected one in `~/.qwen/settings.json` when it is not
/// already what a run would use without `--auth-type`. A failure here only warns: the login worked.
fn record_selection(home: Option<&Path>, method: AuthType, prompter: &mut dyn Prompter) {
    let Some(home) = home else { return };
    let current = match settings::load_selection(Some(home)) {
        Ok((settings::Selection::Known(t), _)) => t,
        Ok(_) => AuthType::Openai,
        Err(e) => {
            prompter.say(&format!(
                "warning: {e}; run `qwen auth use {}` once it is fixed\n",
                method.as_str()
            ));
            return;
        }
    };
    if current == method {
        return;
    }
    match settings::save_selected_type(home, method) {
        Ok(path) => prompter.say(&format!(
            "Selected {} in {} (switch back any time with `qwen auth use`).\n",
            method.as_str(),
            path.display()
        )),
        Err(e) => prompter.say(&format!(
            "warning: could not select {}: {e}\n",
            method.as_str()
        )),
    }
}

/// A run in a terminal found no usable credentials: explain, run the dialogue, and let the caller
/// resolve the configuration again. The method is the one already chosen when it is Qwen OAuth.
pub(crate) fn offer(
    reason: &Error,
    chosen: AuthType,
    ctx: &Context,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Error> {
    let mut prompter = TerminalPrompter;
    prompter.say(&format!(
        "{}\nLet's set up credentials now (Ctrl-C to cancel; `qwen auth login` does the same).\n\n",
        reason.to_string().lines().next().unwrap_or_default()
    ));
    let opts = LoginOptions {
        method: (chosen == AuthType::QwenOauth).then_some(AuthType::QwenOauth),
        user: false,
        verify: true,
    };
    login(opts, ctx, runtime, &mut prompter).map(|_| ())
}

/// The start of a server's error body (a login check reads no more than the client would).
async fn capped_text(response: reqwest::Response) -> String {
    let (bytes, _) = crate::client::read_capped(response, crate::client::MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script; records everything said and asked.
    #[derive(Default)]
    struct Script {
        answers: VecDeque<&'static str>,
        transcript: String,
    }

    impl Script {
        fn new(answers: &[&'static str]) -> Self {
            Self {
                answers: answers.iter().copied().collect(),
                transcript: String::new(),
            }
        }
    }

    impl Prompter for Script {
        fn say(&mut self, text: &str) {
            self.transcript.push_str(text);
        }
        fn ask(&mut self, question: &str) -> Result<Option<String>, Error> {
            self.transcript.push_str(question);
            Ok(self.answers.pop_front().map(str::to_owned))
        }
        fn ask_secret(&mut self, question: &str) -> Result<SecretString, Error> {
            self.transcript.push_str(question);
            self.answers
                .pop_front()
                .map(|a| SecretString::from(a.to_owned()))
                .ok_or_else(cancelled)
        }
    }

    fn context(root: &Path) -> Context {
        let home = root.join("home");
        let cwd = root.join("project");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        Context {
            env: EnvSnapshot::from_pairs([("HOME", home.to_str().unwrap())]),
            terminal: crate::config::Terminal {
                stdin: true,
                stderr: true,
            },
            cwd,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn menu_takes_numbers_names_and_the_default() {
        let cases = [
            (vec![""], AuthType::Openai),
            (vec!["2"], AuthType::QwenOauth),
            (vec!["x", "qwen-oauth"], AuthType::QwenOauth),
            (vec!["OPENAI"], AuthType::Openai),
        ];
        for (answers, want) in cases {
            let mut p = Script::new(&answers);
            assert_eq!(choose_method(&mut p).unwrap(), want, "{answers:?}");
        }
        assert!(choose_method(&mut Script::new(&["x", "y", "z"])).is_err());
        assert!(choose_method(&mut Script::new(&[])).is_err());
    }

    #[test]
    fn api_key_login_writes_the_project_env_and_never_says_the_key() {
        let root = tempfile::tempdir().unwrap();
        let ctx = context(root.path());
        std::fs::create_dir_all(ctx.cwd.join(".qwen")).unwrap();
        std::fs::write(ctx.cwd.join(".qwen/.env"), "KEEP=me\nOPENAI_MODEL=old\n").unwrap();
        let mut p = Script::new(&["sk-test-0123456789abcdef", "", "gpt-4o-mini"]);
        let opts = LoginOptions {
            method: Some(AuthType::Openai),
            user: false,
            verify: false,
        };
        assert_eq!(
            login(opts, &ctx, &runtime(), &mut p).unwrap(),
            AuthType::Openai
        );
        let text = std::fs::read_to_string(ctx.cwd.join(".qwen/.env")).unwrap();
        assert_eq!(
            text,
            "KEEP=me\nOPENAI_MODEL=gpt-4o-mini\nOPENAI_API_KEY=sk-test-0123456789abcdef\nOPENAI_BASE_URL=https://api.openai.com/v1\n"
        );
        assert!(!p.transcript.contains("sk-test-0123456789abcdef"));
        assert!(p.transcript.contains("sk-…ef"));
        // Nothing to select: openai is already what runs use.
        assert!(!settings::path(&ctx.env.home().unwrap()).exists());
    }

    #[test]
    fn api_key_login_with_user_writes_home_and_retries_a_bad_url() {
        let root = tempfile::tempdir().unwrap();
        let ctx = context(root.path());
        let mut p = Script::new(&[
            "sk-user-key-0123456789",
            "not a url",
            "http://127.0.0.1:9/v1",
            "",
        ]);
        let opts = LoginOptions {
            method: Some(AuthType::Openai),
            user: true,
            verify: false,
        };
        login(opts, &ctx, &runtime(), &mut p).unwrap();
        let home_env = ctx.env.home().unwrap().join(".qwen/.env");
        let text = std::fs::read_to_string(&home_env).unwrap();
        assert!(
            text.contains("OPENAI_BASE_URL=http://127.0.0.1:9/v1\n"),
            "{text}"
        );
        assert!(text.contains("OPENAI_MODEL=gpt-4o\n"));
        assert!(!ctx.cwd.join(".qwen/.env").exists());
        assert!(p.transcript.contains("not a usable base URL"));
    }

    #[test]
    fn an_empty_key_saves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let ctx = context(root.path());
        let mut p = Script::new(&[""]);
        let opts = LoginOptions {
            method: Some(AuthType::Openai),
            ..LoginOptions::default()
        };
        let err = login(opts, &ctx, &runtime(), &mut p).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::Auth);
        assert!(!ctx.cwd.join(".qwen/.env").exists());
    }

    #[test]
    fn browser_is_opened_only_when_allowed() {
        let url = Url::parse("https://chat.qwen.ai/authorize?user_code=X").unwrap();
        let env = |pairs: &[(&str, &str)]| EnvSnapshot::from_pairs(pairs.iter().copied());
        let display = [("DISPLAY", ":0")];
        assert!(browser_decision(&env(&display), Some(&url)).is_ok());
        assert!(
            browser_decision(
                &env(&[("DISPLAY", ":0"), ("QWEN_NO_BROWSER", "1")]),
                Some(&url)
            )
            .is_err()
        );
        assert!(
            browser_decision(&env(&[("DISPLAY", ":0"), ("BROWSER", "none")]), Some(&url)).is_err()
        );
        assert!(browser_decision(&env(&display), None).is_err());
        if cfg!(all(unix, not(target_os = "macos"))) {
            assert!(browser_decision(&env(&[]), Some(&url)).is_err());
        }
    }

    #[test]
    fn selection_is_recorded_only_when_it_changes() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path();
        let mut p = Script::default();
        record_selection(Some(home), AuthType::Openai, &mut p);
        assert!(!settings::path(home).exists());
        record_selection(Some(home), AuthType::QwenOauth, &mut p);
        assert_eq!(
            settings::selected_auth_type(Some(home))
                .unwrap()
                .unwrap()
                .value,
            AuthType::QwenOauth
        );
        record_selection(Some(home), AuthType::Openai, &mut p);
        assert_eq!(
            settings::selected_auth_type(Some(home))
                .unwrap()
                .unwrap()
                .value,
            AuthType::Openai
        );
    }
}
