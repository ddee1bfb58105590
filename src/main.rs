//! The `parley` binary: parse the command line and run it (see `cli`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parley::cli::main()
}
