//! Shell completion scripts and the man page, generated from the clap definition so they never drift.

use clap_complete::Shell;

use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::write_stdout;

/// The name completions and the man page are written for, whichever binary was called.
pub(crate) const BIN_NAME: &str = "qwen";

fn named(command: clap::Command) -> clap::Command {
    command.name(BIN_NAME).bin_name(BIN_NAME)
}

/// The completion script for `shell`.
pub(crate) fn completion_script(shell: Shell, command: clap::Command) -> Vec<u8> {
    let mut cmd = named(command);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN_NAME, &mut out);
    out
}

/// The man page in roff.
pub(crate) fn man_page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(named(command)).render(&mut out)?;
    Ok(out)
}

/// Write generated text to stdout; a closed stdout is a normal end, any other write error a failure.
fn emit(data: &[u8]) -> Result<ExitStatus, Error> {
    crate::output::quiet_if_closed(write_stdout(data))?;
    Ok(ExitStatus::Success)
}

/// `qwen completions SHELL`.
/// `command` is the clap definition, handed down by `app` (the generator reads no flag).
pub(crate) fn completions(shell: Shell, command: clap::Command) -> Result<ExitStatus, Error> {
    emit(&completion_script(shell, command))
}

/// `qwen man`.
pub(crate) fn man(command: clap::Command) -> Result<ExitStatus, Error> {
    let page = man_page(command).map_err(|source| Error::Io {
        context: "cannot render the man page".to_owned(),
        source,
    })?;
    emit(&page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_shell_gets_a_script_naming_qwen() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let script = String::from_utf8(completion_script(shell, Cli::command())).unwrap();
            assert!(script.contains("qwen"), "{shell}");
            assert!(script.contains("openai-base-url"), "{shell}");
            assert!(!script.contains("qwen-code"), "{shell}");
        }
    }

    #[test]
    fn man_page_is_roff_for_qwen() {
        let page = String::from_utf8(man_page(Cli::command()).unwrap()).unwrap();
        assert!(page.contains(".TH qwen"), "{page}");
        assert!(page.contains("openai\\-api\\-key"), "{page}");
    }
}
