//! The `qwen` binary: all behaviour lives in the library.

fn main() -> std::process::ExitCode {
    qwen::main_entry("qwen")
}
