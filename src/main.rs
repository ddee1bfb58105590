//! The `parley` binary: parse the command line and run it (see `cli`).

#[global_allocator]
static ALLOCATOR: parley_alloc::MiMalloc = parley_alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parley_alloc::keep_freed_memory();
    parley::cli::main()
}
