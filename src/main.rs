//! The `parley` binary: parse the command line and run it (see `cli`).

fn main() -> std::process::ExitCode {
    parley::cli::main()
}
