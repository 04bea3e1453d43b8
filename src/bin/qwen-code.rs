//! The `qwen-code` binary: the same program under the name Qwen Code's docs use.

fn main() -> std::process::ExitCode {
    qwen::main_entry("qwen-code")
}
