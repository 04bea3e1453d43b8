//! Where the prompt comes from: an argument, standard input, or both — and never a hang on a silent pipe.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::Error;

const HOW_TO_GIVE_A_PROMPT: &str = "give a prompt as an argument (`qwen \"...\"`), with -p/--prompt, or on standard input (`echo \"...\" | qwen`)";

/// How to read the prompt.
#[derive(Debug, Clone)]
pub(crate) struct InputSpec {
    pub(crate) arg: Option<String>,
    pub(crate) stdin_is_terminal: bool,
    pub(crate) stdin_timeout: Duration,
    pub(crate) max_bytes: u64,
}

enum StdinEvent {
    FirstByte,
    Done(std::io::Result<Vec<u8>>),
}

/// Build the text to send: `<stdin>\n\n<prompt>` when both are there (as Qwen Code does).
pub(crate) fn read_prompt(
    spec: &InputSpec,
    stdin: impl Read + Send + 'static,
) -> Result<String, Error> {
    let piped = if spec.stdin_is_terminal {
        None
    } else {
        read_stdin(stdin, spec)?
    };
    let arg = spec.arg.as_deref().filter(|a| !a.trim().is_empty());
    let text = match (piped, arg) {
        (Some(input), Some(arg)) if !input.trim().is_empty() => format!("{input}\n\n{arg}"),
        (_, Some(arg)) => arg.to_owned(),
        (Some(input), None) => input,
        (None, None) => String::new(),
    };
    if text.trim().is_empty() {
        return Err(Error::input(
            "nothing to send: the prompt is empty",
            HOW_TO_GIVE_A_PROMPT,
        ));
    }
    Ok(text)
}

/// Read standard input on a thread of its own, so that a pipe nobody writes to can be left behind.
/// Returns `None` when stdin is given up on (an argument is there and no byte came in time).
fn read_stdin(
    stdin: impl Read + Send + 'static,
    spec: &InputSpec,
) -> Result<Option<String>, Error> {
    let (tx, rx) = mpsc::channel();
    let limit = spec.max_bytes;
    std::thread::spawn(move || {
        let mut reader = stdin.take(limit.saturating_add(1));
        let mut buf = Vec::new();
        let mut first = [0u8; 8192];
        let result = match reader.read(&mut first) {
            Ok(0) => Ok(buf),
            Ok(n) => {
                let _ = tx.send(StdinEvent::FirstByte);
                buf.extend_from_slice(&first[..n]);
                reader.read_to_end(&mut buf).map(|_| buf)
            }
            Err(e) => Err(e),
        };
        let _ = tx.send(StdinEvent::Done(result));
    });

    let event = if spec.arg.is_some() {
        match rx.recv_timeout(spec.stdin_timeout) {
            Ok(event) => event,
            Err(_) => return Ok(None),
        }
    } else {
        rx.recv()
            .map_err(|_| Error::input("standard input could not be read", HOW_TO_GIVE_A_PROMPT))?
    };
    let result = match event {
        StdinEvent::FirstByte => match rx.recv() {
            Ok(StdinEvent::Done(result)) => result,
            _ => {
                return Err(Error::input(
                    "standard input could not be read",
                    HOW_TO_GIVE_A_PROMPT,
                ));
            }
        },
        StdinEvent::Done(result) => result,
    };
    let bytes = match result {
        Ok(bytes) => bytes,
        // A closed or invalid descriptor is no input at all, not a failure.
        Err(e) if e.raw_os_error() == Some(9) => return Ok(None),
        Err(e) => {
            return Err(Error::input(
                format!("cannot read standard input: {e}"),
                HOW_TO_GIVE_A_PROMPT,
            ));
        }
    };
    if bytes.len() as u64 > spec.max_bytes {
        return Err(Error::input(
            format!(
                "the input is larger than the limit of {} bytes; it was not sent",
                spec.max_bytes
            ),
            "raise the limit with --max-input-bytes, or send less (nothing is ever cut silently)",
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => Err(Error::input(
            format!(
                "standard input is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ),
            "convert the input to UTF-8 first, e.g. with `iconv -t UTF-8`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn spec(arg: Option<&str>) -> InputSpec {
        InputSpec {
            arg: arg.map(str::to_owned),
            stdin_is_terminal: false,
            stdin_timeout: Duration::from_millis(200),
            max_bytes: 16,
        }
    }

    /// A reader that never returns, like a pipe nobody writes to.
    struct Silent;
    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }

    #[test]
    fn stdin_then_blank_line_then_prompt() {
        let text = read_prompt(&spec(Some("review")), Cursor::new("diff\n")).unwrap();
        assert_eq!(text, "diff\n\n\nreview");
    }

    #[test]
    fn silent_pipe_with_argument_goes_on() {
        assert_eq!(read_prompt(&spec(Some("hi")), Silent).unwrap(), "hi");
    }

    #[test]
    fn empty_or_blank_input_is_refused() {
        for input in ["", "  \n\t"] {
            let err = read_prompt(&spec(None), Cursor::new(input)).unwrap_err();
            assert_eq!(err.exit_status(), crate::exit::ExitStatus::Input);
        }
    }

    #[test]
    fn too_large_is_refused_not_cut() {
        let err = read_prompt(&spec(None), Cursor::new("x".repeat(17))).unwrap_err();
        assert!(err.to_string().contains("larger than"));
        assert_eq!(
            read_prompt(&spec(None), Cursor::new("y".repeat(16)))
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn terminal_stdin_is_not_read() {
        let mut s = spec(Some("hi"));
        s.stdin_is_terminal = true;
        assert_eq!(read_prompt(&s, Silent).unwrap(), "hi");
    }
}
